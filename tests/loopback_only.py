"""No test may let a packet leave the machine. In the test processes, a
name lookup of anything but an address or "localhost", and a connection to
any address but loopback, fail at once with an error naming it, before any
packet is sent. (Processes the tests start are kept in by what they are
given: receivers on 127.0.0.1, services on loopback ports.)"""

from __future__ import annotations

import errno
import ipaddress
import socket

_LOCAL_NAMES = {None, "localhost", b"localhost"}


def _is_address(host) -> bool:
    try:
        ipaddress.ip_address(host.decode() if isinstance(host, bytes) else host)
    except ValueError:
        return False
    return True


def _on_this_machine(family, address) -> bool:
    if family not in (socket.AF_INET, socket.AF_INET6):
        return True  # a Unix socket (PostgreSQL's, say)
    try:
        return ipaddress.ip_address(address[0]).is_loopback
    except ValueError:
        return False


def keep_connections_on_this_machine() -> None:
    lookup, connect, connect_ex = socket.getaddrinfo, socket.socket.connect, socket.socket.connect_ex

    def local_lookup(host, *args, **kwargs):
        if host not in _LOCAL_NAMES and not _is_address(host):
            raise socket.gaierror(socket.EAI_NONAME, f"tests look up no name but localhost ({host!r})")
        return lookup(host, *args, **kwargs)

    def refuse_elsewhere(sock: socket.socket, address) -> None:
        if not _on_this_machine(sock.family, address):
            raise OSError(errno.ENETUNREACH, f"tests connect to nothing off this machine ({address!r})")

    def local_connect(self, address):
        refuse_elsewhere(self, address)
        return connect(self, address)

    def local_connect_ex(self, address):
        refuse_elsewhere(self, address)
        return connect_ex(self, address)

    socket.getaddrinfo = local_lookup
    socket.socket.connect = local_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = local_connect_ex  # type: ignore[method-assign]
