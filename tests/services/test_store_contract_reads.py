"""The AlertStore seam's contract, continued, on every store (the `backend` fixture): what it
reads back (pages of alerts, the event log, the audit columns), retention (prune, prune marks,
positions) and health. Split from test_store_contract.py to keep each file readable."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from rpc.connections import ConnectionRegistry
from rpc.errors import ErrorCode, RpcError
from schemas.alerts import Alert, UpdateAlertInput
from services.alerts import AlertService
from services.config import DEFAULT_TARGETS
from services.container import Services
from services.store import format_event_id
from tests.services.conftest import FakeClock, alert_input, decode
from tests.services.stores import AnyStore, Backend, open_store

DAY = 86_400.0


async def raise_and_resolve(alerts: AlertService, count: int, hospital: str = "h1") -> list[Alert]:
    created = await asyncio.gather(
        *(alerts.create(alert_input(hospital, title=f"t{i}"), "device-7") for i in range(count))
    )
    return await asyncio.gather(*(alerts.resolve(a.id, "nurse-1", None) for a in created))


async def seqs(store: AnyStore, hospital: str) -> list[int]:
    return [e.seq for e in await store.events_after(hospital, 0, 100_000)]


# --- pages of alerts --------------------------------------------------------------------------


async def test_list_alerts_pages_newest_first_with_a_status_filter(
    store: AnyStore, alerts: AlertService
) -> None:
    made = []
    for i in range(7):
        made.append(await alerts.create(alert_input("h1", title=f"a{i}"), "device-7"))
        await alerts.create(alert_input("h2", title=f"other{i}"), "device-7")
    await alerts.acknowledge(made[1].id, "nurse-1", None)
    await alerts.acknowledge(made[4].id, "nurse-1", None)
    await alerts.resolve(made[2].id, "nurse-1", None)
    current = {a.id: r.alert for a in made if (r := await store.get(a.id)) is not None}

    async def everything(status: Any, limit: int) -> list[list[Alert]]:
        pages, cursor = [], None
        while True:
            items, cursor = await store.list_alerts("h1", status, limit, cursor)
            pages.append(items)
            if cursor is None:
                return pages

    pages = await everything(None, 3)
    assert [len(p) for p in pages] == [3, 3, 1]
    assert [a for p in pages for a in p] == [current[a.id] for a in reversed(made)]

    active = await everything("active", 2)
    expected = [current[made[i].id] for i in (6, 5, 3, 0)]
    assert [a for p in active for a in p] == expected
    assert [len(p) for p in active] == [2, 2]
    acknowledged = await everything("acknowledged", 10)
    assert [a.id for p in acknowledged for a in p] == [made[4].id, made[1].id]
    assert await store.list_alerts("h1", "resolved", 10, None) == ([current[made[2].id]], None)
    assert await store.list_alerts("h3", None, 10, None) == ([], None)


@pytest.mark.parametrize("cursor", ["abc", "-1", "1.5", "²", "9" * 30])
async def test_list_alerts_refuses_a_cursor_it_did_not_issue(store: AnyStore, cursor: str) -> None:
    with pytest.raises(RpcError) as exc:
        await store.list_alerts("h1", None, 10, cursor)
    assert exc.value.code is ErrorCode.BAD_REQUEST
    assert "cursor" in exc.value.data["fieldErrors"]


# --- the event log ----------------------------------------------------------------------------


async def test_events_after_per_hospital_and_per_alert(
    store: AnyStore, alerts: AlertService
) -> None:
    x = await alerts.create(alert_input("h1", title="x"), "device-7")
    z = await alerts.create(alert_input("h2", title="z"), "device-7")
    y = await alerts.create(alert_input("h1", title="y"), "device-7")
    await alerts.acknowledge(x.id, "nurse-1", None)
    await alerts.escalate(y.id, "nurse-1", None)
    await alerts.escalate(z.id, "nurse-1", None)
    await alerts.resolve(x.id, "nurse-1", None)

    h1 = await store.events_after("h1", 0, 100)
    assert [(decode(e).alert_id, decode(e).type) for e in h1] == [
        (x.id, "alert.created"),
        (y.id, "alert.created"),
        (x.id, "alert.acknowledged"),
        (y.id, "alert.escalated"),
        (x.id, "alert.resolved"),
    ]
    assert [e.id for e in h1] == [decode(e).id for e in h1]
    assert [e.seq for e in h1] == sorted(e.seq for e in h1)
    assert {e.hospital_id for e in h1} == {"h1"}

    only_x = await store.events_after("h1", 0, 100, alert_id=x.id)
    assert only_x == [e for e in h1 if e.alert_id == x.id]
    assert await store.events_after("h1", h1[0].seq, 2) == h1[1:3]
    assert await store.events_after("h1", h1[1].seq, 100, alert_id=x.id) == only_x[1:]
    assert await store.events_after("h1", h1[-1].seq, 100) == []
    assert await store.events_after("h2", 0, 100, alert_id=x.id) == []  # not h2's alert
    assert [decode(e).alert_id for e in await store.events_after("h2", 0, 100)] == [z.id] * 2
    assert await store.newest_events("h1", 2) == h1[-2:]
    assert await store.positions("h1") == (h1[-1].seq, 0)


async def test_the_audit_log_keeps_actor_time_and_detail(
    backend: Backend, store: AnyStore, alerts: AlertService, clock: FakeClock
) -> None:
    alert = await alerts.create(alert_input(priority="critical"), "device-7")
    steps: list[Callable[[], Awaitable[Alert]]] = [
        lambda: alerts.acknowledge(alert.id, "nurse-1", "on my way"),
        lambda: alerts.escalate(alert.id, "nurse-1", "needs a physician"),
        lambda: alerts.update(UpdateAlertInput(alert_id=alert.id, title="x"), "charge-1"),
        lambda: alerts.resolve(alert.id, "doc-2", "stabilised"),
    ]
    times = [clock()]
    for step in steps:
        clock.advance(30)
        times.append(clock())
        await step()
    rows = backend.query("SELECT type, actor_id, occurred_ts, detail FROM events ORDER BY seq")
    assert rows == [
        ("alert.created", "device-7", times[0], None),
        ("alert.acknowledged", "nurse-1", times[1], "on my way"),
        ("alert.escalated", "nurse-1", times[2], "needs a physician"),
        ("alert.updated", "charge-1", times[3], None),
        ("alert.resolved", "doc-2", times[4], "stabilised"),
    ]


async def test_automatic_escalation_is_audited_as_the_system(
    backend: Backend, store: AnyStore, alerts: AlertService, clock: FakeClock
) -> None:
    alert = await alerts.create(alert_input(priority="critical"), "device-7")
    clock.advance(DEFAULT_TARGETS["critical"])
    escalated = await alerts.escalate_if_due(alert.id)
    assert escalated is not None
    assert escalated.escalation_level == 1
    [(actor, detail)] = backend.query(
        "SELECT actor_id, detail FROM events WHERE type = 'alert.escalated'"
    )
    assert actor == "system"
    assert "critical" in detail
    assert f"{DEFAULT_TARGETS['critical']:g}" in detail


# --- retention --------------------------------------------------------------------------------


async def test_prune_removes_events_older_than_the_cutoff(
    backend: Backend, store: AnyStore, alerts: AlertService, clock: FakeClock
) -> None:
    await raise_and_resolve(alerts, 60)  # events 1..120, at T0
    old_newest = (await store.positions("h1"))[0]
    clock.advance(10 * DAY)
    await raise_and_resolve(alerts, 60)  # 121..240, ten days later
    newest = (await store.positions("h1"))[0]

    marks = await store.prune(clock() - 5 * DAY)

    assert marks == {"h1": old_newest}
    assert await store.positions("h1") == (newest, old_newest)
    assert await seqs(store, "h1") == list(range(old_newest + 1, newest + 1))
    assert await store.prune(clock() - 5 * DAY) == {}  # nothing more to do
    assert await store.positions("h1") == (newest, old_newest)
    assert backend.query("SELECT * FROM prune_marks") == [("h1", old_newest)]


async def test_a_prune_that_fails_halfway_leaves_the_log_whole(
    backend: Backend,
    store: AnyStore,
    alerts: AlertService,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await raise_and_resolve(alerts, 60)
    before = await seqs(store, "h1")

    delete = "DELETE FROM events WHERE hospital_id = 'h1'"

    def delete_then_fail_sqlite(conn: sqlite3.Connection, before_ts: float) -> dict[str, int]:
        conn.execute(delete)  # retention runs on the database thread, on plain sqlite3
        raise RuntimeError("disk trouble")

    async def delete_then_fail_postgres(db: Any, before_ts: float) -> dict[str, int]:
        await db.execute(delete)
        raise RuntimeError("disk trouble")

    delete_then_fail = (
        delete_then_fail_sqlite if backend.name == "sqlite" else delete_then_fail_postgres
    )

    monkeypatch.setattr(f"services.store_{backend.name}.prune_events", delete_then_fail)
    with pytest.raises(RuntimeError, match="disk trouble"):
        await store.prune(clock() + DAY)
    assert await seqs(store, "h1") == before
    assert backend.query("SELECT COUNT(*) FROM events") == [(len(before),)]
    await raise_and_resolve(alerts, 1)  # the store goes on writing
    assert len(await seqs(store, "h1")) == len(before) + 2


async def test_prune_keeps_every_event_from_the_oldest_open_alert_on(
    store: AnyStore, alerts: AlertService, clock: FakeClock
) -> None:
    await raise_and_resolve(alerts, 30)
    still_open = await alerts.create(alert_input(title="still open"), "device-7")
    await raise_and_resolve(alerts, 30)
    old_newest = (await store.positions("h1"))[0]
    clock.advance(10 * DAY)
    await raise_and_resolve(alerts, 60)
    [first_open] = await store.events_after("h1", 0, 1, alert_id=still_open.id)

    marks = await store.prune(clock() - 5 * DAY)

    assert marks == {"h1": first_open.seq - 1}
    remaining = await seqs(store, "h1")
    assert remaining[0] == first_open.seq  # old, but after the open alert's first event
    assert remaining == list(range(first_open.seq, remaining[-1] + 1))

    await alerts.resolve(still_open.id, "nurse-1", None)
    assert await store.prune(clock() - 5 * DAY) == {"h1": old_newest}  # now it may go
    assert (await store.positions("h1"))[1] == old_newest
    assert (await seqs(store, "h1"))[0] == old_newest + 1


async def test_prune_keeps_the_last_100_events_of_each_hospital(
    backend: Backend, clock: FakeClock
) -> None:
    """CONTRACT 4: at least the last 100 events of each hospital are always replayable, and
    event ids keep increasing after everything older was pruned and the server restarted."""
    async with open_store(backend) as store:
        alerts = AlertService(store, dict(DEFAULT_TARGETS), clock)
        await raise_and_resolve(alerts, 70, "h1")  # 140 events
        await raise_and_resolve(alerts, 5, "h2")  # 10 events
        h1_before, h2_before = await seqs(store, "h1"), await seqs(store, "h2")
        clock.advance(30 * DAY)

        marks = await store.prune(clock() - 7 * DAY)

        assert marks == {"h1": h1_before[-101]}
        assert await seqs(store, "h1") == h1_before[-100:]
        assert await seqs(store, "h2") == h2_before
        assert await store.positions("h2") == (h2_before[-1], 0)

    async with open_store(backend) as store:
        alerts = AlertService(store, dict(DEFAULT_TARGETS), clock)
        for hospital, before in (("h1", h1_before), ("h2", h2_before)):
            alert = await alerts.create(alert_input(hospital), "device-7")
            [event] = await store.events_after(hospital, 0, 1, alert_id=alert.id)
            assert event.seq > before[-1]


async def test_services_prune_applies_the_configured_retention(
    backend: Backend, clock: FakeClock
) -> None:
    config = backend.config(retention_s=2 * DAY)
    services = await Services.open(config, ConnectionRegistry(), clock=clock, background=False)
    try:
        await raise_and_resolve(services.alerts, 60)
        clock.advance(DAY)
        assert await services.prune() == {}  # within retention
        clock.advance(2 * DAY)
        await raise_and_resolve(services.alerts, 60)
        marks = await services.prune()
        assert marks == {"h1": 120}
        topic = await services.subscriptions.topic("h1")
        assert topic.pruned == 120
        page = await services.subscriptions.page("h1", format_event_id(5), 10)
        assert [e.type for e in page.events] == ["stream.reset"]
    finally:
        await services.close()


# --- health -----------------------------------------------------------------------------------


async def test_healthy_while_open_and_unavailable_after_close(backend: Backend) -> None:
    store = backend.new_store()
    assert not await store.healthy()
    await store.open()
    assert await store.healthy()
    await store.close()
    assert not await store.healthy()
    with pytest.raises(RpcError) as exc:
        await store.transact(lambda tx: asyncio.sleep(0))
    assert exc.value.code is ErrorCode.SERVICE_UNAVAILABLE
