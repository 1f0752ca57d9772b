"""Where a webhook may be sent: http(s) to public addresses only (unless
WEBHOOK_ALLOW_PRIVATE_NETWORKS), checked when a URL is registered and again
at delivery, where the connection goes to an address that was checked, so no
second DNS lookup sits between the check and the connect (DNS rebinding)."""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit


class UnsafeUrl(ValueError):
    """The URL may not receive webhooks; the message says why."""


@dataclass(frozen=True)
class Target:
    """A webhook URL taken apart, with the addresses that may be connected to."""

    scheme: str
    host: str
    port: int
    path: str  # path and query, as sent
    addresses: tuple[str, ...]

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        return self.host if self.port == default else f"{self.host}:{self.port}"

    def url_for(self, address: str) -> str:
        literal = f"[{address}]" if ":" in address else address
        return f"{self.scheme}://{literal}:{self.port}{self.path}"


def resolve(url: str, *, allow_private: bool) -> Target:
    """Parse and resolve `url`; every address it resolves to must be allowed.
    Raises UnsafeUrl."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise UnsafeUrl("Only http and https URLs can receive webhooks.")
    if not parts.hostname:
        raise UnsafeUrl("The URL has no host.")
    if parts.username or parts.password:
        raise UnsafeUrl("The URL must not carry credentials.")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise UnsafeUrl("The URL's port is not valid.") from None
    host = parts.hostname
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise UnsafeUrl(f"The host {host!r} does not resolve.") from None
    # An IPv4 or IPv6 sockaddr starts with the address as a string (typeshed
    # also allows the int of other families, which a host lookup never gives).
    addresses = tuple(dict.fromkeys(str(info[4][0]) for info in infos))
    refused = [address for address in addresses if not (allow_private or is_public(address))]
    if refused:
        raise UnsafeUrl(
            f"The host {host!r} resolves to {refused[0]}, a loopback, private, link-local or "
            "otherwise non-public address."
        )
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(parts.scheme, host, port, path, addresses)


def is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    # is_global is False for loopback, private, link-local, unique-local,
    # shared, reserved and unspecified ranges; multicast is refused too.
    return ip.is_global and not ip.is_multicast
