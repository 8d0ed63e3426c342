"""Presence across two nodes sharing Redis: a connection on one node shows (with its name) on
the other, a status set on one is seen by the other, a node started later learns it from the
shared key, and the user leaves both after the grace period."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from rpc.connections import ConnectionRegistry
from rpc.context import Principal
from services.cluster_redis import RedisClusterState
from services.presence import GRACE_S, PresenceService
from tests.polling import until
from tests.redis_support import shared_cluster
from tests.services.conftest import T0, FakeClock


def nurse(sub: str) -> Principal:
    return Principal(sub, "nurse", frozenset({"h1"}), T0 + 86_400, "Ana Silva")


@pytest.fixture
async def cluster() -> AsyncIterator[tuple[str, str]]:
    async with shared_cluster() as where:
        yield where


async def node(
    where: tuple[str, str], name: str, clock: FakeClock
) -> tuple[RedisClusterState, ConnectionRegistry, PresenceService]:
    state = RedisClusterState(where[0], name, where[1])
    registry = ConnectionRegistry(state)
    presence = PresenceService(state, clock)
    await state.start()
    return state, registry, presence


async def test_presence_is_shared_through_redis(cluster: tuple[str, str], clock: FakeClock) -> None:
    a_state, a_conns, a = await node(cluster, "node-a", clock)
    b_state, _b_conns, b = await node(cluster, "node-b", clock)
    try:
        a_conns.add("c1", nurse("nurse-1"))
        await until(lambda: b.member("nurse-1") is not None, "node b to see a's nurse")
        member = b.member("nurse-1")
        assert member is not None
        assert (member.name, member.devices, member.status) == ("Ana Silva", 1, "online")
        await a.set("nurse-1", "busy", "Bed 12")

        def busy_on_b() -> bool:
            seen = b.member("nurse-1")
            return seen is not None and (seen.status, seen.activity) == ("busy", "Bed 12")

        await until(busy_on_b, "node b to see the status set on a")
        c_state, _c_conns, c = await node(cluster, "node-c", clock)
        try:

            def busy_on_c() -> bool:
                seen = c.member("nurse-1")
                return seen is not None and seen.status == "busy"

            await until(busy_on_c, "a node started later to learn the status")
        finally:
            await c.stop()
            await c_state.close()
        a_conns.remove("c1")
        await until(
            lambda: b.snapshot("h1").members != [] and b_state.connections_of("nurse-1") == 0,
            "b to see the close",
        )
        b.tick()
        assert b.member("nurse-1") is not None  # within the grace period
        clock.advance(GRACE_S)
        b.tick()
        a.tick()
        assert b.member("nurse-1") is None
        assert a.member("nurse-1") is None
    finally:
        await a.stop()
        await b.stop()
        await a_state.close()
        await b_state.close()
