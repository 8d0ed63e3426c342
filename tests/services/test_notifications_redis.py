"""A cluster as deployed (PostgreSQL and Redis): a notification written on one node reaches
the user's subscription on the other, and so does a read."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from rpc.connections import ConnectionRegistry
from services.cluster_redis import RedisClusterState
from services.config import DomainConfig
from services.container import Services
from tests.redis_support import shared_cluster
from tests.services.conftest import FakeClock
from tests.services.test_notification_sweep import (
    ESCALATED,
    assign_and_escalate,
    without_fast_path,
)
from tests.services.test_notifications import inbox, seen, staff


@pytest.fixture
async def nodes(postgres_url: str, clock: FakeClock) -> AsyncIterator[tuple[Services, Services]]:
    config = DomainConfig(postgres_url=postgres_url)
    async with shared_cluster() as (url, prefix):
        states = [RedisClusterState(url, name, prefix) for name in ("node-a", "node-b")]
        opened: list[Services] = []
        try:
            for state in states:
                registry = ConnectionRegistry(state)
                opened.append(await Services.open(config, registry, clock=clock, background=False))
                await state.start()
            yield opened[0], opened[1]
        finally:
            for services in opened:
                await services.close()
            for state in states:
                await state.close()


async def test_a_notification_and_a_read_cross_nodes(nodes: tuple[Services, Services]) -> None:
    a, b = nodes
    stream = await b.notifications.stream("nurse-1", None)
    assert (await asyncio.wait_for(anext(stream), 10)).data.type == "notification.count"
    [written] = await a.notifications.notify(["nurse-1"], "broadcast", "hello", None, "h1", None)
    new = (await asyncio.wait_for(anext(stream), 10)).data
    assert new.type == "notification.new"
    assert new.notification.title == "hello"
    count = (await asyncio.wait_for(anext(stream), 10)).data
    assert (count.type, getattr(count, "unread", None)) == ("notification.count", 1)
    await a.notifications.mark_read("nurse-1", [written.id])
    read = (await asyncio.wait_for(anext(stream), 10)).data
    assert (read.type, getattr(read, "ids", None)) == ("notification.read", [new.notification.id])
    await stream.aclose()


async def test_one_node_sweeps_what_a_dead_node_did_not_notify(
    nodes: tuple[Services, Services], clock: FakeClock
) -> None:
    """The sweep's lease in Redis: one node at a time, the other once it is given back; a
    change committed on a node that lost its fast path is notified exactly once."""
    a, b = nodes
    await seen(a, staff("cn-1", "charge_nurse"), staff("nurse-1", "nurse"))
    without_fast_path(a)
    alert = await assign_and_escalate(a, clock)
    handled = await asyncio.gather(a.notification_sweep.run_once(), b.notification_sweep.run_once())
    assert sorted(handled) == [0, 2]  # one of them holds the lease
    holder, other = (a, b) if handled[0] else (b, a)
    assert await other.notification_sweep.run_once() == 0
    await holder.notification_sweep.stop()  # gives the lease back
    later = await assign_and_escalate(a, clock)
    assert await other.notification_sweep.run_once() == 2
    expected = [(ESCALATED, alert.id), (ESCALATED, later.id)]
    assert await inbox(other, "cn-1") == expected
