"""TCP ports on this machine: a free one, whether one can still be listened
on, and which program holds one."""

from __future__ import annotations

import errno
import re
import shutil
import socket
import subprocess


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def bind_problem(host: str, port: int) -> tuple[str, str] | None:
    """Why a server could not listen on host:port, and which of the two to
    change ("port" or "host"); None when it could. Binds as the servers do,
    with SO_REUSEADDR, so a connection still closing is no obstacle."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as exc:
        return f"{host} is not a name or address this machine knows ({exc.strerror})", "host"
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return f"port {port} is taken{_held_by(port)}", "port"
            if exc.errno == errno.EADDRNOTAVAIL:
                return f"{host} is not an address of this machine", "host"
            return f"cannot listen on {host}:{port} ({exc.strerror})", "port"
    return None


def next_free_port(host: str, port: int) -> int:
    """The first port above `port` that `host` can listen on."""
    for candidate in range(port + 1, min(port + 100, 65536)):
        if bind_problem(host, candidate) is None:
            return candidate
    return free_port()


def _held_by(port: int) -> str:
    """` (by <program>, pid <n>)` when `ss` can tell (other users' programs
    it names only to root), else nothing."""
    if shutil.which("ss") is None:
        return ""
    listing = subprocess.run(
        ["ss", "-Hltnp", f"sport = :{port}"], capture_output=True, text=True, timeout=5, check=False
    ).stdout
    found = re.search(r'users:\(\("([^"]+)",pid=(\d+)', listing)
    return f" (by {found[1]}, pid {found[2]})" if found else ""
