"""What the machine did during a run, read from /proc: latency summaries,
CPU time by process group, memory high-water marks, load from processes
outside the benchmark; and what the machine and the code measured are."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def latency_stats(values_ms: list[float]) -> dict:
    """Count, mean, p50/p95/p99 and max of durations in milliseconds."""
    if not values_ms:
        return {"n": 0}
    a = np.asarray(values_ms, dtype=float)
    return {"n": int(a.size), "mean": float(a.mean()), "max": float(a.max()),
            **{f"p{q}": float(np.percentile(a, q)) for q in (50, 95, 99)}}  # fmt: skip


def epoch_seconds(timestamp: str) -> float:
    """A job row's ISO 8601 timestamp as time.time() seconds (one machine, one clock)."""
    return dt.datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()


def usable_cores() -> int:
    return len(os.sched_getaffinity(0))


def _stat_fields(pid: int) -> list[str] | None:
    """/proc/PID/stat after the command name (state, ppid, pgrp, ...); None once gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return stat[stat.rfind(")") + 2 :].split()


def group_pids(pgid: int) -> list[int]:
    pids = [int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit()]
    return [pid for pid in pids if (fields := _stat_fields(pid)) and int(fields[2]) == pgid]


def cpu_seconds(pids: list[int]) -> float:
    """utime + stime of the processes and their reaped children, in core-seconds."""
    return sum(sum(int(x) for x in fields[11:15]) for pid in pids if (fields := _stat_fields(pid))) / CLOCK_TICKS


def memory_kb(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM (peak RSS) and Pss in kB of one process ({} once gone)."""
    out = {}
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
        lines += Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return out
    for line in lines:
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM", "Pss"):
            out[key] = int(value.split()[0])
    return out


def machine_busy_seconds() -> float:
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / CLOCK_TICKS  # all but idle and iowait


def own_cpu_seconds() -> float:
    """This process and its reaped children (the service, redis, the baseline)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


class OtherLoad:
    """CPU that processes outside the benchmark used since this was made:
    the machine's busy time minus the benchmark's own (with reaped children)."""

    def __init__(self) -> None:
        self.busy0, self.own0, self.t0 = machine_busy_seconds(), own_cpu_seconds(), time.perf_counter()

    def measure(self) -> dict:
        wall = time.perf_counter() - self.t0
        busy, own = machine_busy_seconds() - self.busy0, own_cpu_seconds() - self.own0
        other = max(0.0, busy - own)
        return {"wall_s": wall, "other_core_s": other, "other_share": other / (wall * usable_cores())}


class CpuMeter:
    """Average cores busy per phase: the given process groups (a group named
    in `split` as its leader and the rest: a Celery worker's main process and
    its pool), redis, this driver's threads (the HTTP clients), everything
    else, idle."""

    def __init__(self, groups: dict[str, int], redis_pid: int, split: tuple[str, ...] = ()) -> None:
        self.groups, self.redis_pid, self.split = groups, redis_pid, split
        self.phases: dict[str, dict] = {}
        self._mark = self._read()

    def _read(self) -> dict:
        values = {}
        for name, pgid in self.groups.items():
            group = cpu_seconds(group_pids(pgid))
            if name in self.split:
                leader = cpu_seconds([pgid])
                values |= {f"{name} main": leader, f"{name} pool": group - leader}
            else:
                values[name] = group
        t = os.times()
        values.update(redis=cpu_seconds([self.redis_pid]), driver=t.user + t.system)
        return {**values, "machine": machine_busy_seconds(), "wall": time.perf_counter()}

    def phase(self, name: str) -> None:
        """Close the phase that began at the previous call (or creation)."""
        now = self._read()
        delta = {k: now[k] - self._mark[k] for k in now}
        wall, machine = delta.pop("wall"), delta.pop("machine")
        self.phases[name] = {"wall_s": wall, **{k: v / wall for k, v in delta.items()},
                             "other": max(0.0, machine - sum(delta.values())) / wall,
                             "idle": max(0.0, usable_cores() - machine / wall)}  # fmt: skip
        self._mark = now


class MemorySampler:
    """Samples process groups once a second: per group the sum of each
    process's peak RSS (VmHWM) and the highest sampled sum of PSS (which
    counts pages shared after fork once)."""

    def __init__(self, groups: dict[str, int]) -> None:
        self.groups = groups
        self.hwm: dict[str, dict[int, int]] = {name: {} for name in groups}
        self.peak_pss = dict.fromkeys(groups, 0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def sample(self) -> None:
        for name, pgid in self.groups.items():
            memories = [(pid, memory_kb(pid)) for pid in group_pids(pgid)]
            for pid, memory in memories:
                if memory:
                    self.hwm[name][pid] = max(self.hwm[name].get(pid, 0), memory["VmHWM"])
            self.peak_pss[name] = max(self.peak_pss[name], sum(m.get("Pss", 0) for _, m in memories))

    def _loop(self) -> None:
        while not self._stop.wait(1.0):
            self.sample()

    def stop(self) -> dict:
        self.sample()
        self._stop.set()
        self._thread.join(5)
        return {
            name: {"per_process_hwm_mb": sorted((kb / 1024 for kb in self.hwm[name].values()), reverse=True),
                   "sum_hwm_mb": sum(self.hwm[name].values()) / 1024, "peak_pss_sum_mb": self.peak_pss[name] / 1024}
            for name in self.groups
        }  # fmt: skip


def machine_info() -> dict:
    """CPU, RAM, kernel, Python, library versions and the code measured."""
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    meminfo = Path("/proc/meminfo").read_text().splitlines()
    return {
        "cores": usable_cores(),
        "cpu_model": next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), "?"),
        "ram_gb": round(next(int(line.split()[1]) for line in meminfo if line.startswith("MemTotal")) / 2**20, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "load_average_at_start": Path("/proc/loadavg").read_text().split()[:3],
        "versions": library_versions(),
        "code": code_state(),
    }


def library_versions() -> dict:
    """Asked of a fresh interpreter, so the driver need not import torch."""
    modules = "torch,sentence_transformers,faiss,celery,sqlalchemy,numpy"
    code = f"import json,{modules};print(json.dumps({{m.__name__:m.__version__ for m in ({modules})}}))"
    return json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)


def code_state() -> str:
    """The commit measured, and whether files outside bench/ and docs/ had changed."""
    git = ["git", "-C", str(ROOT)]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    status = subprocess.run([*git, "status", "--porcelain"], capture_output=True, text=True).stdout.splitlines()
    changed = [line[3:] for line in status if not line[3:].startswith(("bench/", "docs/"))]
    return head + (f" + changes to {', '.join(changed)}" if changed else "")


def search_batches(metrics_dir: Path) -> tuple[float, float]:
    """(jobs, batches) of the search micro-batches a worker has run, from its
    metrics folder (Prometheus' multiprocess files)."""
    from prometheus_client import CollectorRegistry, multiprocess

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(metrics_dir))
    totals = {"_sum": 0.0, "_count": 0.0}
    for metric in registry.collect():
        for sample in metric.samples if metric.name == "quarry_job_batch_size" else ():
            suffix = sample.name.removeprefix("quarry_job_batch_size")
            if suffix in totals and sample.labels.get("type") == "search":
                totals[suffix] += sample.value
    return totals["_sum"], totals["_count"]


def mean_batch(before: tuple[float, float], after: tuple[float, float]) -> float | None:
    """Searches per micro-batch between two search_batches() reads; None when none ran."""
    (jobs, batches), (jobs_after, batches_after) = before, after
    return (jobs_after - jobs) / (batches_after - batches) if batches_after > batches else None
