"""Which client a connection or request comes from, for the limits that count per address.

The peer's address, unless the peer is a proxy listed in TRUSTED_PROXIES: then the right-most
address of `X-Forwarded-For` that is not itself a trusted proxy. Entries to the left of that
are whatever the client chose to send and are never believed; with no trusted proxies the
header is ignored altogether, so a client cannot pick the address it is counted under.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network

Network = IPv4Network | IPv6Network
Address = IPv4Address | IPv6Address
UNKNOWN = "unknown"


def parse_networks(raw: str) -> tuple[Network, ...]:
    """TRUSTED_PROXIES: a comma list of addresses or CIDR blocks. Raises ValueError."""
    networks: list[Network] = []
    for item in raw.split(","):
        item = item.strip()
        if not item:
            continue
        try:
            networks.append(ip_network(item, strict=False))
        except ValueError:
            raise ValueError(
                f"TRUSTED_PROXIES: {item[:64]!r} is not an address or CIDR block"
            ) from None
    return tuple(networks)


def _parse(text: str) -> Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # [v6]:port
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # v4:port
        text = text.split(":", 1)[0]
    try:
        address = ip_address(text)
    except ValueError:
        return None
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _trusted(address: Address, proxies: tuple[Network, ...]) -> bool:
    return any(address in network for network in proxies)


def client_address(
    peer: str | None, forwarded_for: str | None, proxies: tuple[Network, ...]
) -> str:
    """The address a client is counted under (normalised, so one host has one key)."""
    address = _parse(peer) if peer else None
    if address is None:
        return peer or UNKNOWN
    if not proxies or not forwarded_for or not _trusted(address, proxies):
        return str(address)
    for hop in reversed(forwarded_for.split(",")):
        candidate = _parse(hop)
        if candidate is None:  # a proxy we trust wrote something that is not an address
            break
        address = candidate
        if not _trusted(candidate, proxies):
            break
    return str(address)
