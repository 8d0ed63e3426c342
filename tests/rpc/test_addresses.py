"""rpc.addresses: which address a client is counted under. X-Forwarded-For is believed only
from a trusted proxy, and only as far as the right-most hop that is not itself trusted."""

from __future__ import annotations

from ipaddress import ip_network

import pytest

from rpc.addresses import UNKNOWN, client_address, parse_networks

PROXIES = parse_networks("10.0.0.0/8, 2001:db8::/32, 127.0.0.1")


def test_the_peer_when_there_is_no_header() -> None:
    assert client_address("192.0.2.7", None, ()) == "192.0.2.7"
    assert client_address("192.0.2.7", None, PROXIES) == "192.0.2.7"
    assert client_address("10.1.2.3", "", PROXIES) == "10.1.2.3"


def test_no_peer_or_a_peer_that_is_not_an_address() -> None:
    assert client_address(None, "192.0.2.9", PROXIES) == UNKNOWN
    assert client_address("", None, ()) == UNKNOWN
    assert client_address("/run/alertwire.sock", "192.0.2.9", PROXIES) == "/run/alertwire.sock"


def test_the_header_is_ignored_without_trusted_proxies() -> None:
    """Anyone can send X-Forwarded-For: without a proxy list it would pick the address."""
    assert client_address("192.0.2.7", "198.51.100.1", ()) == "192.0.2.7"
    assert client_address("10.0.0.1", "198.51.100.1, 198.51.100.2", ()) == "10.0.0.1"


def test_the_header_is_ignored_when_the_peer_is_not_trusted() -> None:
    assert client_address("192.0.2.7", "198.51.100.1", PROXIES) == "192.0.2.7"
    assert client_address("11.0.0.1", "10.0.0.5", PROXIES) == "11.0.0.1"


def test_the_right_most_hop_that_is_not_a_trusted_proxy() -> None:
    """Entries left of it are whatever the client wrote (here a spoofed 203.0.113.66)."""
    chain = "203.0.113.66, 198.51.100.1, 10.0.0.9, 10.0.0.2"
    assert client_address("10.0.0.1", chain, PROXIES) == "198.51.100.1"
    assert client_address("10.0.0.1", "198.51.100.1", PROXIES) == "198.51.100.1"


def test_a_chain_of_trusted_proxies_only_gives_its_left_most_hop() -> None:
    assert client_address("10.0.0.1", "10.0.0.3, 10.0.0.2", PROXIES) == "10.0.0.3"


def test_a_malformed_hop_stops_the_walk_at_the_last_trusted_one() -> None:
    """What a trusted proxy wrote that is not an address cannot name a client; the hop that
    forwarded it is counted instead (never anything further left)."""
    assert client_address("10.0.0.1", "198.51.100.1, not-an-ip, 10.0.0.2", PROXIES) == "10.0.0.2"
    assert client_address("10.0.0.1", "garbage", PROXIES) == "10.0.0.1"
    assert client_address("10.0.0.1", "198.51.100.1, ", PROXIES) == "10.0.0.1"


def test_ipv6_and_ipv4_mapped_addresses_are_normalised() -> None:
    """One host, one key: a mapped IPv4 address and a long-form IPv6 address count as the
    addresses they are."""
    assert client_address("::ffff:192.0.2.7", None, ()) == "192.0.2.7"
    assert client_address("2001:DB8:0:0::1", None, ()) == "2001:db8::1"
    assert client_address("::ffff:127.0.0.1", "198.51.100.1", PROXIES) == "198.51.100.1"
    assert client_address("2001:db8::1", "2001:db9::5, 2001:db8::7", PROXIES) == "2001:db9::5"
    assert client_address("10.0.0.1", "::ffff:198.51.100.1", PROXIES) == "198.51.100.1"


def test_ports_are_dropped() -> None:
    assert client_address("10.0.0.1", "198.51.100.1:4711", PROXIES) == "198.51.100.1"
    assert client_address("10.0.0.1", "[2001:db9::5]:443", PROXIES) == "2001:db9::5"
    assert client_address("[::1]:80", None, ()) == "::1"
    assert client_address("192.0.2.7:80", None, ()) == "192.0.2.7"


def test_trusted_proxies_are_parsed_from_a_comma_list() -> None:
    assert parse_networks("") == ()
    assert parse_networks(" , ") == ()
    assert parse_networks(" 10.0.0.0/8 , 127.0.0.1 ,::1") == (
        ip_network("10.0.0.0/8"),
        ip_network("127.0.0.1/32"),
        ip_network("::1/128"),
    )
    assert parse_networks("10.1.2.3/8") == (ip_network("10.0.0.0/8"),)  # host bits allowed


@pytest.mark.parametrize("raw", ["proxy.example", "10.0.0.0/33", "10.0.0.1, 300.1.1.1", "::g"])
def test_a_bad_trusted_proxy_says_which(raw: str) -> None:
    with pytest.raises(ValueError, match=r"TRUSTED_PROXIES: .* is not an address or CIDR block"):
        parse_networks(raw)


def test_a_bad_trusted_proxy_is_quoted_short() -> None:
    with pytest.raises(ValueError, match="TRUSTED_PROXIES") as refused:
        parse_networks("x" * 10_000)
    assert len(str(refused.value)) < 150
