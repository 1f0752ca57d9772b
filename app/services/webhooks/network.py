"""Where a webhook may be sent: http(s) to public addresses only (unless
WEBHOOK_ALLOW_PRIVATE_NETWORKS), checked when a URL is registered and again
at delivery, where the connection goes to an address that was checked, so no
second DNS lookup sits between the check and the connect (DNS rebinding)."""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

# What may be looked up: an address literal or a DNS name (IDNA names reach
# here as Unicode letters; anything else, such as spaces, is refused unsent).
_HOST_NAME = re.compile(r"[\w.:%-]+")


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


def checked_target(url: str, *, allow_private: bool) -> Target:
    """Parse and resolve `url`; every address it resolves to must be allowed.
    Raises UnsafeUrl."""
    try:
        parts = urlsplit(url)
        httpx.URL(url)  # what delivery will send it with must read it too
    except (ValueError, httpx.InvalidURL) as exc:
        raise UnsafeUrl(f"The URL cannot be parsed ({exc}).") from None
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
    if not _HOST_NAME.fullmatch(host):
        raise UnsafeUrl(f"The host {host!r} is not a valid host name.")
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


# IPv6 ranges whose addresses carry an IPv4 address in their last 32 bits:
# IPv4-compatible (deprecated), and NAT64's well-known prefix.
_LAST_32_BITS_IS_IPV4 = (ipaddress.ip_network("::/96"), ipaddress.ip_network("64:ff9b::/96"))
# NAT64 for local use: whatever it embeds, it leads into a private network.
_LOCAL_NAT64 = ipaddress.ip_network("64:ff9b:1::/48")


def is_public(address: str) -> bool:
    """Whether `address` may receive webhooks with private networks refused.
    An IPv6 address that carries an IPv4 address (mapped, compatible, NAT64,
    6to4, Teredo) is judged by the IPv4 addresses a packet to it reaches."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv4Address):
        return _public(ip)
    if ip in _LOCAL_NAT64:
        return False
    embedded = embedded_ipv4(ip)
    if embedded:
        return all(_public(inner) for inner in embedded)
    return _public(ip)


def embedded_ipv4(ip: ipaddress.IPv6Address) -> tuple[ipaddress.IPv4Address, ...]:
    """The IPv4 addresses `ip` carries, if it is one of the forms that embed one."""
    if ip.ipv4_mapped is not None:
        return (ip.ipv4_mapped,)
    if any(ip in network for network in _LAST_32_BITS_IS_IPV4):
        return (ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF),)
    if ip.sixtofour is not None:
        return (ip.sixtofour,)
    if ip.teredo is not None:
        return ip.teredo  # the Teredo server and the client behind it
    return ()


def _public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    # is_global is False for loopback, private, link-local, unique-local,
    # shared, reserved and unspecified ranges; multicast is refused too.
    return ip.is_global and not ip.is_multicast
