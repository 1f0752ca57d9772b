"""What the machine did during a run, read from /proc (no psutil): CPU time
by process group, memory high-water marks, load from processes outside the
benchmark; and what the machine is."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path

from bench.parameters import ROOT

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def usable_cores() -> int:
    return len(os.sched_getaffinity(0))


def _stat_fields(pid: int) -> list[str] | None:
    """/proc/PID/stat after the command name (which may hold spaces):
    state, ppid, pgrp, ...; None once the process is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return stat[stat.rfind(")") + 2 :].split()


def group_pids(pgid: int) -> list[int]:
    """The live processes of a process group."""
    pids = [int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit()]
    return [pid for pid in pids if (fields := _stat_fields(pid)) and int(fields[2]) == pgid]


def cpu_seconds(pids: list[int]) -> float:
    """utime + stime of the processes, plus what their reaped children used,
    in core-seconds."""
    ticks = 0
    for pid in pids:
        if fields := _stat_fields(pid):
            ticks += sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
    return ticks / CLOCK_TICKS


def memory_kb(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) in kB of one process ({} once it is gone)."""
    out = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return {}
    return out


def pss_kb(pid: int) -> int:
    """Proportional set size in kB: pages shared with other processes count
    in part (0 once the process is gone)."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return 0


def machine_busy_seconds() -> float:
    """Busy CPU time of the whole machine since boot, in core-seconds."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / CLOCK_TICKS


def own_cpu_seconds() -> float:
    """CPU time of this process and of its reaped children (the service
    processes, redis, the baseline process)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def load_average() -> list[str]:
    return Path("/proc/loadavg").read_text().split()[:3]


class OtherLoad:
    """CPU that processes outside the benchmark used since it was made: the
    machine's busy time minus this process's and its reaped children's. Exact
    once every child started in between has been reaped."""

    def __init__(self) -> None:
        self.busy0, self.own0, self.t0 = machine_busy_seconds(), own_cpu_seconds(), time.perf_counter()

    def measure(self) -> dict:
        wall = time.perf_counter() - self.t0
        busy, own = machine_busy_seconds() - self.busy0, own_cpu_seconds() - self.own0
        other = max(0.0, busy - own)
        return {
            "wall_s": wall,
            "machine_busy_core_s": busy,
            "benchmark_core_s": own,
            "other_core_s": other,
            "other_share": other / (wall * usable_cores()),
        }


class CpuMeter:
    """Who used the CPU in each phase of the service run: the web and worker
    process groups, redis, this driver (the HTTP clients), everything else."""

    def __init__(self, groups: dict[str, int], redis_pid: int) -> None:
        self.groups = groups
        self.redis_pid = redis_pid  # not a group of its own: just the one process
        self.phases: dict[str, dict] = {}
        self._mark = self._read()

    def _read(self) -> dict:
        values = {name: cpu_seconds(group_pids(pgid)) for name, pgid in self.groups.items()}
        values["redis"] = cpu_seconds([self.redis_pid])
        t = os.times()
        values["driver"] = t.user + t.system  # threads included; children are counted in their groups
        values["machine"] = machine_busy_seconds()
        values["wall"] = time.perf_counter()
        return values

    def phase(self, name: str) -> None:
        """Close the phase that began at the previous call (or creation)."""
        now = self._read()
        delta = {k: now[k] - self._mark[k] for k in now}
        wall = delta.pop("wall")
        machine = delta.pop("machine")
        ours = sum(delta.values())
        self.phases[name] = {
            "wall_s": wall,
            **{f"{k}_cores": v / wall for k, v in delta.items()},
            "other_cores": max(0.0, machine - ours) / wall,
            "idle_cores": max(0.0, usable_cores() - machine / wall),
        }
        self._mark = now


class MemorySampler:
    """Samples whole process groups once a second; keeps, per group, each
    process's high-water mark (VmHWM) and the highest sampled sum of RSS and
    of PSS (PSS splits pages shared after fork, so its sum does not
    double-count)."""

    def __init__(self, groups: dict[str, int], interval: float = 1.0) -> None:
        self.groups = groups
        self.interval = interval
        self.hwm: dict[str, dict[int, int]] = {name: {} for name in groups}
        self.peak_rss_sum = {name: 0 for name in groups}
        self.peak_pss_sum = {name: 0 for name in groups}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def start(self) -> MemorySampler:
        self._thread.start()
        return self

    def sample(self) -> None:
        for name, pgid in self.groups.items():
            rss_sum = pss_sum = 0
            for pid in group_pids(pgid):
                memory = memory_kb(pid)
                if not memory:
                    continue
                self.hwm[name][pid] = max(self.hwm[name].get(pid, 0), memory["VmHWM"])
                rss_sum += memory["VmRSS"]
                pss_sum += pss_kb(pid)
            self.peak_rss_sum[name] = max(self.peak_rss_sum[name], rss_sum)
            self.peak_pss_sum[name] = max(self.peak_pss_sum[name], pss_sum)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def stop(self) -> dict:
        self.sample()
        self._stop.set()
        self._thread.join(5)
        return {
            name: {
                "processes": len(self.hwm[name]),
                "per_process_hwm_mb": sorted((v / 1024 for v in self.hwm[name].values()), reverse=True),
                "sum_hwm_mb": sum(self.hwm[name].values()) / 1024,
                "peak_rss_sum_mb": self.peak_rss_sum[name] / 1024,
                "peak_pss_sum_mb": self.peak_pss_sum[name] / 1024,
            }
            for name in self.groups
        }


def machine_info() -> dict:
    """CPU, RAM, kernel, Python, library versions and the code measured."""
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    meminfo = Path("/proc/meminfo").read_text().splitlines()
    return {
        "nproc": usable_cores(),
        "cpu_count": os.cpu_count(),
        "cpu_model": next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), "?"),
        "ram_gb": next(int(line.split()[1]) for line in meminfo if line.startswith("MemTotal")) / 1024 / 1024,
        "python": platform.python_version(),
        "kernel": platform.release(),
        "loadavg_at_start": load_average(),
        "versions": library_versions(),
        **code_state(),
    }


def library_versions() -> dict:
    """Asked of a fresh interpreter, so the driver need not import torch."""
    code = (
        "import json,torch,sentence_transformers,faiss,celery,sqlalchemy,numpy;"
        "print(json.dumps({m.__name__:getattr(m,'__version__','?') for m in "
        "(torch,sentence_transformers,faiss,celery,sqlalchemy,numpy)}))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def code_words(state: dict) -> str:
    """A code state as the reports write it."""
    dirty = state["git_dirty"]
    return f"commit {state['git_head']}" + (
        f" plus uncommitted changes to {', '.join(f'`{d}`' for d in dirty)}" if dirty else " (clean tree)"
    )


def code_state() -> dict:
    """The commit measured and the files changed since, leaving out the
    benchmarks and their reports, which do not change what is measured."""
    git = ["git", "-C", str(ROOT)]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    status = subprocess.run(
        [*git, "status", "--porcelain", "--untracked-files=all"], capture_output=True, text=True
    )
    changed = [line[3:] for line in status.stdout.splitlines() if line[3:]]
    return {
        "git_head": head.stdout.strip(),
        "git_dirty": [path for path in changed if not path.startswith(("bench/", "docs/benchmarks.md", "docs/quality.md"))],
    }
