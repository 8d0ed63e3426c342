"""Two nodes' services in one process, on one PostgreSQL database (services/container.py in
cluster mode): each node's alert cache follows the other's commits through the events, each
schedules the alerts the other raises, and when both try to escalate one alert in the same
period exactly one does."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from rpc.connections import ConnectionRegistry
from services.config import DomainConfig
from services.container import Services
from services.store_postgres import PostgresAlertStore
from tests.polling import until
from tests.services.conftest import FakeClock, alert_input

CRITICAL = 60.0


@pytest.fixture
async def nodes(postgres_url: str, clock: FakeClock) -> AsyncIterator[tuple[Services, Services]]:
    config = DomainConfig(postgres_url=postgres_url)
    a = await Services.open(config, ConnectionRegistry(), clock=clock, background=False)
    try:
        b = await Services.open(config, ConnectionRegistry(), clock=clock, background=False)
        try:
            yield a, b
        finally:
            await b.close()
    finally:
        await a.close()


async def test_a_cached_alert_follows_the_other_nodes_commits(
    nodes: tuple[Services, Services],
) -> None:
    a, b = nodes
    alert = await a.alerts.create(alert_input(), "device-7")
    assert (await b.alerts.get(alert.id)).alert.version == 1  # b has it cached now
    await a.alerts.escalate(alert.id, "nurse-1", None)

    async def b_reads_version_2() -> bool:
        return (await b.alerts.get(alert.id)).alert.version == 2

    await until(b_reads_version_2, "node b's copy to follow node a's escalation", 5)
    acked = await b.alerts.acknowledge(alert.id, "nurse-2", None)
    assert isinstance(b.store, PostgresAlertStore)
    assert (acked.version, b.store.reruns) == (3, 0)  # no stale write had to be run again


async def test_each_node_schedules_the_others_alerts_and_one_escalates(
    nodes: tuple[Services, Services], clock: FakeClock
) -> None:
    a, b = nodes
    alert = await a.alerts.create(alert_input(priority="critical"), "device-7")
    await until(lambda: b.escalation.pending == 1, "node b to schedule node a's alert", 5)
    clock.advance(CRITICAL + 0.01)
    both = await asyncio.gather(a.escalation.run_due(), b.escalation.run_due())
    assert sum(both) == 1
    events = await a.store.events_after("h1", 0, 10, alert.id)
    assert len(events) == 2  # created, escalated once
