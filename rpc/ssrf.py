"""Where outbound webhooks may go (CONTRACT 9): `https` only, and never to an address inside
the network the server runs in (private, loopback, link-local, multicast, reserved,
unspecified; IPv4-mapped IPv6 judged as the IPv4 it carries) unless WEBHOOK_ALLOW_PRIVATE=1,
which also allows `http`, for development and tests.

A name is judged by every address it resolves to, and the sender connects only to addresses
judged here (the transport's resolver calls `safe_addresses`), so a name that resolves to a
public address when checked and a private one when used (DNS rebinding) gets nothing.
Redirects are never followed.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class UnsafeUrl(Exception):
    """A URL the server must not send to; the message is safe to show (it names no address)."""


@dataclass(frozen=True, slots=True)
class Target:
    scheme: str
    host: str
    port: int


def forbidden_address(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or not address.is_global
    )


def parse_target(url: str, allow_private: bool) -> Target:
    """The URL's scheme, host and port, or UnsafeUrl for one that is not acceptable as such."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise UnsafeUrl("not a valid URL") from None
    allowed = ("https", "http") if allow_private else ("https",)
    if parts.scheme not in allowed:
        raise UnsafeUrl("must be an https URL")
    if not parts.hostname:
        raise UnsafeUrl("must name a host")
    if parts.username or parts.password:
        raise UnsafeUrl("must not carry credentials")
    default = 443 if parts.scheme == "https" else 80
    return Target(parts.scheme, parts.hostname, port or default)


async def safe_addresses(host: str, port: int, allow_private: bool) -> list[str]:
    """The addresses `host` resolves to, all of them allowed; UnsafeUrl if it does not resolve
    or any of them is forbidden."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise UnsafeUrl("the host does not resolve") from None
    addresses: list[str] = []
    for info in infos:
        raw = str(info[4][0]).split("%", 1)[0]
        address = ipaddress.ip_address(raw)
        if not allow_private and forbidden_address(address):
            raise UnsafeUrl("resolves to a private, loopback or link-local address")
        if raw not in addresses:
            addresses.append(raw)
    if not addresses:
        raise UnsafeUrl("the host does not resolve")
    return addresses


async def check_url(url: str, allow_private: bool) -> Target:
    """The whole check for a URL being registered: its form, then where it resolves."""
    target = parse_target(url, allow_private)
    await safe_addresses(target.host, target.port, allow_private)
    return target
