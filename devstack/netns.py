"""Network namespaces as hosts of one machine, for devstack/cluster.py:
making and removing them, the processes in each, and clusters a killed
process left behind. Needs root and iproute2."""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from devstack.postgres import postgres_binaries
from devstack.processes import PROJECT_ROOT
from devstack.waiting import wait_until

# A file per running cluster, named by its tag: the pid of the process that
# owns it, then the directories to remove with it.
STATE_DIR = Path("/run/quarry-cluster")
PREFIX = "quarry-"


class NamespacesUnavailable(RuntimeError):
    """This machine (or user) cannot make the cluster's namespaces."""


def namespaces_problem() -> str | None:
    """Why a cluster cannot be built here, or None."""
    if os.geteuid() != 0:
        return "network namespaces need root (run as root, or in a VM or container with CAP_SYS_ADMIN)"
    if shutil.which("ip") is None:
        return "no `ip` command (iproute2)"
    if shutil.which("redis-server") is None:
        return "no redis-server on this machine"
    if postgres_binaries() is None:
        return "no PostgreSQL binaries under /usr/lib/postgresql"
    return None


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check, timeout=30)


def add_bridge(name: str, address: str) -> None:
    """A bridge in the root namespace with `address` (CIDR), up."""
    ip("link", "add", name, "type", "bridge")
    ip("addr", "add", address, "dev", name)
    ip("link", "set", name, "up")


def add_namespace(namespace: str, bridge: str, link: str, address: str) -> None:
    """A namespace joined to `bridge` by a veth (`link` its root end, eth0
    inside, with `address`), its loopback and eth0 up."""
    try:
        ip("netns", "add", namespace)
    except subprocess.CalledProcessError as exc:
        raise NamespacesUnavailable(f"`ip netns add` failed: {exc.stderr.strip()}") from exc
    ip("link", "add", link, "type", "veth", "peer", "name", "eth0", "netns", namespace)
    ip("link", "set", link, "master", bridge, "up")
    inside = ["netns", "exec", namespace, "ip"]
    ip(*inside, "link", "set", "lo", "up")
    ip(*inside, "addr", "add", address, "dev", "eth0")
    ip(*inside, "link", "set", "eth0", "up")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def used_networks() -> list[ipaddress.IPv4Network]:
    """Every IPv4 network the root namespace has an address or a route in."""
    used = []
    for entry in json.loads(ip("-4", "-j", "addr").stdout or "[]"):
        for info in entry.get("addr_info", []):
            used.append(ipaddress.IPv4Network(f"{info['local']}/{info['prefixlen']}", strict=False))
    for route in json.loads(ip("-4", "-j", "route", "show", "table", "all").stdout or "[]"):
        destination = route.get("dst", "default")
        if destination != "default":
            try:
                used.append(ipaddress.IPv4Network(destination, strict=False))
            except ValueError:
                continue
    return used


def free_subnet() -> ipaddress.IPv4Network:
    """The first 10.77.N.0/24 that overlaps nothing this machine routes."""
    used = used_networks()
    for third in range(256):
        candidate = ipaddress.IPv4Network(f"10.77.{third}.0/24")
        if not any(candidate.overlaps(network) for network in used):
            return candidate
    raise NamespacesUnavailable("every 10.77.N.0/24 is in use on this machine")


def namespaces() -> list[str]:
    return [line.split()[0] for line in ip("netns", "list").stdout.splitlines() if line.strip()]


def remove_abandoned() -> None:
    """Clusters whose owning process is gone (killed before its stop()):
    their processes, namespaces and bridge."""
    if not STATE_DIR.exists():
        return
    for state in STATE_DIR.iterdir():
        if state.name.startswith("."):
            continue
        try:
            lines = state.read_text().split("\n")
            owner = int(lines[0])
        except (OSError, ValueError):
            lines, owner = [], 0
        if owner and alive(owner):
            continue
        tag = state.name
        for namespace in namespaces():
            if namespace.startswith(f"{PREFIX}{tag}-"):
                kill_namespace(namespace, signal.SIGKILL)
                ip("netns", "del", namespace, check=False)
        remove_links(tag)
        for directory in lines[1:]:  # PostgreSQL's files, the work folder
            if directory.startswith(tempfile.gettempdir()):
                shutil.rmtree(directory, ignore_errors=True)
        state.unlink(missing_ok=True)


def remove_links(tag: str) -> None:
    """The cluster's bridge and the root ends of its veths (the kernel removes
    a veth with its namespace, but not always at once)."""
    for link in json.loads(ip("-j", "link").stdout or "[]"):
        if link["ifname"].startswith(f"qv{tag}"):
            ip("link", "del", link["ifname"], check=False)
    ip("link", "del", f"qbr-{tag}", check=False)


def namespace_pids(namespace: str) -> list[int]:
    result = ip("netns", "pids", namespace, check=False)
    return [int(pid) for pid in result.stdout.split()]


def kill_namespace(namespace: str, sig: int) -> None:
    for pid in namespace_pids(namespace):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


@dataclass
class Host:
    """One network namespace: an address, a directory, and the processes
    started in it."""

    role: str
    namespace: str
    address: str
    directory: Path
    env: dict[str, str]
    processes: list[subprocess.Popen] = field(default_factory=list)

    @property
    def var_dir(self) -> Path:
        return self.directory / "var"

    def spawn(self, args: list[str], log_name: str, **env: str) -> subprocess.Popen:
        process = subprocess.Popen(
            ["ip", "netns", "exec", self.namespace, *args],
            cwd=PROJECT_ROOT,
            env={**self.env, **env},
            stdout=(self.directory / log_name).open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.processes.append(process)
        return process

    def log(self, name: str) -> str:
        path = self.directory / name
        return path.read_text(errors="replace") if path.exists() else ""

    def pids(self) -> list[int]:
        """Every process in the host's namespace (children and daemons too)."""
        return namespace_pids(self.namespace)

    def kill(self, sig: int = signal.SIGKILL, timeout: float = 20) -> None:
        """`sig` to every process of the host; wait until none is left (then
        SIGKILL whatever is)."""
        kill_namespace(self.namespace, sig)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for process in self.processes:
                process.poll()
            if not self.pids():
                break
            time.sleep(0.1)
        else:
            kill_namespace(self.namespace, signal.SIGKILL)
            wait_until(lambda: not self.pids(), 10, what=f"the processes of {self.role}")
        for process in self.processes:
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                pass
