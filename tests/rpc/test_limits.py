"""rpc.limits: the hostile-traffic limits from the environment, the anonymous pool and the
message limit before and after authentication (CONTRACT 5a)."""

from __future__ import annotations

from ipaddress import ip_network
from pathlib import Path

import pytest

from rpc.limits import AnonymousPlace, AnonymousPool, Limits
from server.config import ConfigError, load


def test_the_hostile_traffic_limits_are_read_from_the_environment() -> None:
    limits = Limits.from_env(
        {
            "MAX_UNAUTHENTICATED_MESSAGE_BYTES": "1024",
            "MAX_UNAUTHENTICATED_CONNECTIONS": "30",
            "MAX_UNAUTHENTICATED_PER_ADDRESS": "3",
            "MAX_HTTP_CONNECTIONS": "40",
            "HEADER_TIMEOUT_SECONDS": "0.5",
            "KEEPALIVE_TIMEOUT_SECONDS": "7",
            "SEND_QUEUE_TOTAL_BYTES": "2097152",
            "MAX_JSON_VALUES": "500",
            "TRUSTED_PROXIES": "10.0.0.0/8, ::1",
        }
    )
    assert limits == Limits(
        max_unauthenticated_message_bytes=1024,
        max_unauthenticated_connections=30,
        max_unauthenticated_per_address=3,
        max_http_connections=40,
        header_timeout_s=0.5,
        keepalive_timeout_s=7.0,
        send_queue_total_bytes=2_097_152,
        max_json_values=500,
        trusted_proxies=(ip_network("10.0.0.0/8"), ip_network("::1/128")),
    )


def test_the_defaults_are_the_contract_s() -> None:
    limits = Limits.from_env({"TRUSTED_PROXIES": "", "HEADER_TIMEOUT_SECONDS": " "})
    assert limits == Limits()
    assert limits.max_unauthenticated_message_bytes == 16_384
    assert limits.max_unauthenticated_connections == 1000
    assert limits.max_unauthenticated_per_address == 20
    assert limits.max_http_connections == 2000
    assert (limits.header_timeout_s, limits.keepalive_timeout_s) == (10.0, 75.0)
    assert limits.send_queue_total_bytes == 268_435_456
    assert limits.sse_stall_timeout_s == 30.0
    assert limits.trusted_proxies == ()


def test_zero_turns_the_connection_pools_off() -> None:
    limits = Limits.from_env(
        {
            "MAX_UNAUTHENTICATED_CONNECTIONS": "0",
            "MAX_UNAUTHENTICATED_PER_ADDRESS": "0",
            "MAX_HTTP_CONNECTIONS": "0",
        }
    )
    assert limits.max_unauthenticated_connections == 0
    assert limits.max_unauthenticated_per_address == 0
    assert limits.max_http_connections == 0


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("MAX_UNAUTHENTICATED_MESSAGE_BYTES", "0", "positive"),
        ("MAX_UNAUTHENTICATED_MESSAGE_BYTES", "16k", "whole number"),
        ("MAX_UNAUTHENTICATED_CONNECTIONS", "-1", "non-negative"),
        ("MAX_UNAUTHENTICATED_PER_ADDRESS", "1.5", "whole number"),
        ("MAX_HTTP_CONNECTIONS", "-5", "non-negative"),
        ("HEADER_TIMEOUT_SECONDS", "0", "between"),
        ("HEADER_TIMEOUT_SECONDS", "3600", "between"),
        ("KEEPALIVE_TIMEOUT_SECONDS", "forever", "number of seconds"),
        ("KEEPALIVE_TIMEOUT_SECONDS", "-1", "between"),
        ("SEND_QUEUE_TOTAL_BYTES", "0", "positive"),
        ("MAX_JSON_VALUES", "0", "positive"),
        ("MAX_JSON_VALUES", "-3", "positive"),
    ],
)
def test_bad_values_say_which_and_why(tmp_path: Path, name: str, value: str, message: str) -> None:
    with pytest.raises(ValueError, match=f"{name} must be .*{message}"):
        Limits.from_env({name: value})
    with pytest.raises(ConfigError, match=f"{name} must be .*{message}"):
        load({"ALERTWIRE_DATA_DIR": str(tmp_path / "data"), name: value})


def test_a_bad_trusted_proxy_stops_the_server_from_starting(tmp_path: Path) -> None:
    env = {"ALERTWIRE_DATA_DIR": str(tmp_path / "data"), "TRUSTED_PROXIES": "10.0.0.1, lb"}
    with pytest.raises(ConfigError, match="TRUSTED_PROXIES: 'lb' is not an address"):
        load(env)


def test_the_message_limit_before_and_after_authentication() -> None:
    limits = Limits(max_message_bytes=1_048_576, max_unauthenticated_message_bytes=16_384)
    assert limits.message_limit(authenticated=True) == 1_048_576
    assert limits.message_limit(authenticated=False) == 16_384
    small = Limits(max_message_bytes=4096, max_unauthenticated_message_bytes=16_384)
    assert small.message_limit(authenticated=False) == 4096  # never more than anyone's


def places(pool: AnonymousPool, *addresses: str) -> list[AnonymousPlace]:
    admitted = [pool.admit(address) for address in addresses]
    assert all(isinstance(place, AnonymousPlace) for place in admitted), admitted
    return [place for place in admitted if isinstance(place, AnonymousPlace)]


def test_a_full_pool_takes_back_its_oldest_place_for_a_newcomer() -> None:
    taken: list[str] = []
    pool = AnonymousPool(total=3, per_address=0, count=taken.append)
    closed: list[str] = []
    first, second, third = places(pool, "192.0.2.1", "192.0.2.2", "192.0.2.3")
    for place in (first, second, third):
        place.evict = lambda place=place: closed.append(place.address)
    (fourth,) = places(pool, "192.0.2.4")
    assert closed == ["192.0.2.1"]
    assert first.evicted
    assert [p.evicted for p in (second, third, fourth)] == [False] * 3
    assert taken == ["anonymous_evicted"]
    assert pool.open == 3
    pool.release(second)  # authenticated: its place is free, nobody is taken back
    places(pool, "192.0.2.5")
    assert closed == ["192.0.2.1"]


def test_a_place_taken_back_before_its_connection_exists_is_marked() -> None:
    pool = AnonymousPool(total=1, per_address=0)
    (early,) = places(pool, "192.0.2.1")  # still in its handshake: no evict callback yet
    places(pool, "192.0.2.2")
    assert early.evicted
    pool.release(early)  # the handshake's own clean-up later: nothing else changes
    assert pool.open == 1


def test_the_anonymous_pool_caps_each_address() -> None:
    pool = AnonymousPool(total=10, per_address=2)
    first, _ = places(pool, "192.0.2.1", "192.0.2.1")
    assert pool.admit("192.0.2.1") == "anonymous_per_address"
    places(pool, "192.0.2.2")  # another address has places of its own
    assert pool.open == 3
    pool.release(first)
    places(pool, "192.0.2.1")
    assert pool.admit("192.0.2.1") == "anonymous_per_address"


def test_an_address_at_its_cap_is_refused_rather_than_taking_back_a_place() -> None:
    pool = AnonymousPool(total=2, per_address=2)
    places(pool, "192.0.2.1", "192.0.2.1")
    assert pool.admit("192.0.2.1") == "anonymous_per_address"
    places(pool, "192.0.2.2")  # the total is full: the oldest goes, the address may come in


def test_zero_turns_either_cap_off() -> None:
    pool = AnonymousPool(total=0, per_address=0)
    places(pool, *["192.0.2.1"] * 5000)
    assert pool.open == 5000
    per_address_only = AnonymousPool(total=0, per_address=1)
    places(per_address_only, *[f"192.0.2.{n}" for n in range(200)])
    assert per_address_only.admit("192.0.2.1") == "anonymous_per_address"


def test_releasing_more_than_was_admitted_changes_nothing() -> None:
    """A connection may be released on more than one path (it authenticated, it closed):
    only the first counts, and no address can go negative or free another's place."""
    pool = AnonymousPool(total=2, per_address=1)
    (place,) = places(pool, "192.0.2.1")
    pool.release(place)
    pool.release(place)
    assert pool.open == 0
    (again,) = places(pool, "192.0.2.1")
    places(pool, "192.0.2.2")
    pool.release(place)  # the old place: already gone
    assert pool.open == 2
    assert pool.admit("192.0.2.1") == "anonymous_per_address"  # `again` still holds it
    pool.release(again)
    assert pool.open == 1
