"""Notifications from the event log, on both stores: a change whose fast-path notification was
lost (the hook not run, its write failed, the node gone) is notified by the sweep, after a
restart too, exactly once per recipient; the fast path and the sweep, or two nodes sweeping
at once, never write one twice; the cursor survives a restart."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator
from typing import Any

import pytest

from rpc.cluster_memory import InMemoryClusterState, MemoryHub
from rpc.connections import ConnectionRegistry
from schemas.alerts import Alert, UpdateAlertInput
from services import postgres_schema, sqlite_schema
from services.config import DomainConfig
from services.container import Services
from services.notification_store import NewNotification, NotificationRecord
from services.notification_sweep import NotificationSweep
from tests.polling import until
from tests.postgres import fetch
from tests.services.conftest import FakeClock, alert_input
from tests.services.stores import Backend, SqliteBackend
from tests.services.test_notifications import inbox, seen, settled, staff

ASSIGNED = "alert.assigned"
ESCALATED = "alert.escalated"


async def open_node(
    config: DomainConfig, clock: FakeClock, hub: MemoryHub | None = None, name: str = "a"
) -> Services:
    cluster = InMemoryClusterState(name, hub or MemoryHub())
    return await Services.open(config, ConnectionRegistry(cluster), clock=clock, background=False)


def without_fast_path(services: Services) -> None:
    """As if the node died between the commit and the notification rules."""
    services.alerts._committed_listeners.clear()


async def assign_and_escalate(services: Services, clock: FakeClock) -> Alert:
    """nurse-1 assigned by cn-1, then the alert escalates by itself."""
    alert = await services.alerts.create(alert_input(priority="critical"), "device-7")
    await services.alerts.update(UpdateAlertInput(alert_id=alert.id, assigned_to="nurse-1"), "cn-1")
    clock.advance(services.config.targets["critical"])
    assert await services.alerts.escalate_if_due(alert.id) is not None
    return alert


@pytest.fixture
async def node(config: DomainConfig, clock: FakeClock) -> AsyncIterator[Services]:
    services = await open_node(config, clock)
    try:
        await seen(services, staff("cn-1", "charge_nurse"), staff("nurse-1", "nurse"))
        yield services
    finally:
        await services.close()


async def test_a_lost_fast_path_is_notified_after_a_restart_once(
    config: DomainConfig, clock: FakeClock
) -> None:
    node = await open_node(config, clock)
    try:
        await seen(node, staff("cn-1", "charge_nurse"), staff("nurse-1", "nurse"))
        without_fast_path(node)
        alert = await assign_and_escalate(node, clock)
        await settled(node)
        assert await inbox(node, "nurse-1") == []  # lost with the node
    finally:
        await node.close()

    restarted = await open_node(config, clock)
    try:
        assert await restarted.notification_sweep.catch_up() == 2
        expected = [(ASSIGNED, alert.id), (ESCALATED, alert.id)]
        assert await inbox(restarted, "nurse-1") == expected
        assert await inbox(restarted, "cn-1") == [(ESCALATED, alert.id)]
        assert restarted.notification_sweep.written == 3
        assert await restarted.notification_sweep.run_once() == 0  # the cursor moved on
    finally:
        await restarted.close()

    again = await open_node(config, clock)  # the cursor survives the restart
    try:
        assert await again.notification_sweep.catch_up() == 0
        assert await inbox(again, "nurse-1") == expected
    finally:
        await again.close()


async def test_a_failed_fast_path_write_is_written_by_the_sweep(
    node: Services, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = node.notifications.store
    real_add = store.add

    async def failing(items: Any) -> list[NotificationRecord]:
        raise ConnectionError("database gone")

    monkeypatch.setattr(store, "add", failing)
    alert = await assign_and_escalate(node, clock)
    await settled(node)
    monkeypatch.setattr(store, "add", real_add)
    assert await inbox(node, "nurse-1") == []
    assert await node.notification_sweep.catch_up() == 2
    assert await inbox(node, "nurse-1") == [(ASSIGNED, alert.id), (ESCALATED, alert.id)]
    assert await inbox(node, "cn-1") == [(ESCALATED, alert.id)]


async def test_a_failed_sweep_write_keeps_the_cursor_before_the_event(
    node: Services, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    without_fast_path(node)
    alert = await assign_and_escalate(node, clock)
    store = node.notifications.store
    real_add = store.add
    calls = 0

    async def second_fails(items: list[NewNotification]) -> list[NotificationRecord]:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise ConnectionError("database gone")
        return await real_add(items)

    monkeypatch.setattr(store, "add", second_fails)
    assert await node.notification_sweep.run_once() == 1  # the assignment; not the escalation
    assert await inbox(node, "cn-1") == []
    assert await node.notification_sweep.run_once() == 1  # the escalation, again
    assert await inbox(node, "nurse-1") == [(ASSIGNED, alert.id), (ESCALATED, alert.id)]
    assert await inbox(node, "cn-1") == [(ESCALATED, alert.id)]
    assert await node.notification_sweep.run_once() == 0


async def test_the_fast_path_and_the_sweep_never_duplicate(
    node: Services, clock: FakeClock
) -> None:
    alert = await assign_and_escalate(node, clock)
    # The sweep races the fast path's writes, then runs again once they are done.
    await asyncio.gather(node.notification_sweep.catch_up(), settled(node))
    await node.notification_sweep.catch_up()
    await settled(node)
    assert await inbox(node, "nurse-1") == [(ASSIGNED, alert.id), (ESCALATED, alert.id)]
    assert await inbox(node, "cn-1") == [(ESCALATED, alert.id)]


async def test_the_sweep_writes_nothing_the_fast_path_wrote(
    node: Services, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    await assign_and_escalate(node, clock)
    await settled(node)
    writes = 0
    store = node.notifications.store
    real_add = store.add

    async def counted(items: list[NewNotification]) -> list[NotificationRecord]:
        nonlocal writes
        writes += 1
        return await real_add(items)

    monkeypatch.setattr(store, "add", counted)
    assert await node.notification_sweep.catch_up() == 2
    assert (writes, node.notification_sweep.written) == (0, 0)  # asked, found, not written


async def test_the_sweep_applies_the_assignment_rule_from_the_previous_event(
    node: Services,
) -> None:
    without_fast_path(node)
    alert = await node.alerts.create(alert_input(), "device-7")
    update = node.alerts.update
    await update(UpdateAlertInput(alert_id=alert.id, assigned_to="nurse-1"), "cn-1")
    await update(UpdateAlertInput(alert_id=alert.id, title="Bed 12"), "cn-1")  # same assignee
    await update(UpdateAlertInput(alert_id=alert.id, assigned_to="cn-1"), "cn-1")  # oneself
    await update(UpdateAlertInput(alert_id=alert.id, assigned_to="nurse-1"), "cn-1")  # back
    assert await node.notification_sweep.catch_up() == 4
    assert await inbox(node, "nurse-1") == [(ASSIGNED, alert.id), (ASSIGNED, alert.id)]
    assert await inbox(node, "cn-1") == []


async def test_two_nodes_sweeping_at_once_write_each_notification_once(
    config: DomainConfig, clock: FakeClock
) -> None:
    a = await open_node(config, clock, name="a")
    b = await open_node(config, clock, name="b")
    try:
        await seen(a, staff("cn-1", "charge_nurse"), staff("nurse-1", "nurse"))
        without_fast_path(a)
        alert = await assign_and_escalate(a, clock)
        # No lease between them (each its own cluster): only the dedupe keys stand between
        # them and a duplicate.
        one = NotificationSweep(a.notification_sweep.cursors, a.notifications, None)
        two = NotificationSweep(b.notification_sweep.cursors, b.notifications, None)
        await asyncio.gather(one.catch_up(), two.catch_up())
        assert one.written + two.written == 3
        assert await inbox(b, "nurse-1") == [(ASSIGNED, alert.id), (ESCALATED, alert.id)]
        assert await inbox(b, "cn-1") == [(ESCALATED, alert.id)]
        assert await a.notification_sweep.catch_up() == 0
        assert await b.notification_sweep.catch_up() == 0
    finally:
        await b.close()
        await a.close()


async def test_in_a_cluster_one_node_sweeps_until_it_stops(
    config: DomainConfig, clock: FakeClock
) -> None:
    hub = MemoryHub()
    a = await open_node(config, clock, hub, "a")
    b = await open_node(config, clock, hub, "b")
    try:
        await seen(a, staff("cn-1", "charge_nurse"), staff("nurse-1", "nurse"))
        without_fast_path(a)
        without_fast_path(b)
        first = await assign_and_escalate(a, clock)
        assert await a.notification_sweep.run_once() == 2  # a takes the lease
        second = await assign_and_escalate(b, clock)
        assert await b.notification_sweep.run_once() == 0  # a holds it
        await a.notification_sweep.stop()  # gives it back
        assert await b.notification_sweep.run_once() == 2
        assert await inbox(b, "cn-1") == [(ESCALATED, first.id), (ESCALATED, second.id)]
    finally:
        await b.close()
        await a.close()


async def rewind_to_before_the_cursors(backend: Backend) -> None:
    """The database as a server before the sweep left it: no cursor table, one version back."""
    if isinstance(backend, SqliteBackend):
        with contextlib.closing(sqlite3.connect(backend.path)) as db:
            db.execute("DROP TABLE notification_cursors")
            db.execute(f"PRAGMA user_version = {sqlite_schema.SCHEMA_VERSION - 1}")
            db.commit()
        return
    await fetch(backend.url, "DROP TABLE notification_cursors")
    await fetch(
        backend.url,
        "DELETE FROM schema_migrations WHERE version = ?",
        postgres_schema.SCHEMA_VERSION,
    )


async def test_an_upgraded_database_does_not_notify_its_past(
    backend: Backend, config: DomainConfig, clock: FakeClock
) -> None:
    node = await open_node(config, clock)
    try:
        await seen(node, staff("cn-1", "charge_nurse"), staff("nurse-1", "nurse"))
        without_fast_path(node)
        await assign_and_escalate(node, clock)
    finally:
        await node.close()
    await rewind_to_before_the_cursors(backend)

    upgraded = await open_node(config, clock)
    try:
        assert await upgraded.notification_sweep.catch_up() == 0
        assert await inbox(upgraded, "cn-1") == []
        without_fast_path(upgraded)
        alert = await assign_and_escalate(upgraded, clock)  # after the upgrade: notified
        assert await upgraded.notification_sweep.catch_up() == 2
        assert await inbox(upgraded, "cn-1") == [(ESCALATED, alert.id)]
    finally:
        await upgraded.close()


async def test_a_node_catches_up_as_it_starts(config: DomainConfig, clock: FakeClock) -> None:
    node = await open_node(config, clock)
    try:
        await seen(node, staff("cn-1", "charge_nurse"), staff("nurse-1", "nurse"))
        without_fast_path(node)
        alert = await assign_and_escalate(node, clock)
    finally:
        await node.close()
    registry = ConnectionRegistry(InMemoryClusterState("a", MemoryHub()))
    started = await Services.open(config, registry, clock=clock, background=True)
    try:
        wanted = [(ASSIGNED, alert.id), (ESCALATED, alert.id)]

        async def notified() -> bool:
            return await inbox(started, "nurse-1") == wanted

        await until(notified, "the start-up sweep", 10)
    finally:
        await started.close()
