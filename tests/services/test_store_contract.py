"""The AlertStore seam's contract, the writing side, run on every store (SQLite and PostgreSQL,
the `backend` fixture): durable and increasing event ids, commit-then-publish, batch isolation,
two writers on one database, closing. Reads, the audit log and retention are in
test_store_contract_reads.py; what only one store has is in test_store_sqlite.py and
test_store_postgres.py."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import orjson
import pytest

from rpc.errors import ErrorCode, RpcError
from schemas.alerts import Alert, UpdateAlertInput
from services import lifecycle
from services.alerts import AlertService, event_payload
from services.config import DEFAULT_TARGETS
from services.store import (
    CONFLICT_RETRIES,
    AlertRecord,
    StagedChange,
    StoredEvent,
    Transaction,
    format_event_id,
)
from tests.services.conftest import FakeClock, alert_input, decode
from tests.services.stores import AnyStore, Backend, open_store, published


def service(store: AnyStore, clock: FakeClock) -> AlertService:
    return AlertService(store, dict(DEFAULT_TARGETS), clock)


async def stage_escalation(tx: Transaction, alert_id: str, actor: str, now: float) -> StoredEvent:
    """What AlertService does, by hand, so a test can fail after staging."""
    record = await tx.get(alert_id)
    assert record is not None
    change = lifecycle.escalate(record.alert, actor, now)
    staged = StagedChange(
        AlertRecord(change.alert, record.created_ts, record.responded_ts, None),
        change.event_type,
        actor,
        now,
        None,
    )
    return tx.stage(staged, lambda seq: event_payload(seq, change, actor, now))


# --- opening ------------------------------------------------------------------------------


async def test_reopening_keeps_the_data(backend: Backend, clock: FakeClock) -> None:
    async with open_store(backend) as store:
        alert = await service(store, clock).create(alert_input(), "device-7")
        acked = await service(store, clock).acknowledge(alert.id, "nurse-1", None)

    async with open_store(backend) as store:
        record = await store.get(alert.id)
        assert record is not None
        assert record.alert == acked
        assert [decode(e).type for e in await store.events_after("h1", 0, 10)] == [
            "alert.created",
            "alert.acknowledged",
        ]


async def test_first_start_of_two_stores_on_one_new_database(backend: Backend) -> None:
    """Two nodes starting together on a fresh database: both open, the schema is made once
    (three separate processes: test_store_postgres.py)."""
    first, second = backend.new_store(), backend.new_store()
    results = await asyncio.gather(first.open(), second.open(), return_exceptions=True)
    for store in (first, second):
        await store.close()
    assert list(results) == [None, None]
    assert backend.query("SELECT COUNT(*) FROM alerts") == [(0,)]


# --- event ids --------------------------------------------------------------------------------


async def test_event_ids_increase_across_restarts(backend: Backend, clock: FakeClock) -> None:
    ids: list[str] = []
    for _ in range(3):
        async with open_store(backend) as store:
            alert = await service(store, clock).create(alert_input(), "device-7")
            await service(store, clock).resolve(alert.id, "nurse-1", None)
            ids += [e.id for e in published(store).events]
    assert len(ids) == 6
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert [int(i) for i in ids] == sorted(int(i) for i in ids)
    assert ids[0] == format_event_id(1)


# --- commit, then publish ---------------------------------------------------------------------


async def test_change_and_event_commit_together_before_publish(
    backend: Backend, store: AnyStore, alerts: AlertService
) -> None:
    recorder = published(store)
    caller_resumed = False
    seen: list[tuple[bool, list[Any], list[Any]]] = []

    def on_commit(events: Any) -> None:
        # Another connection already sees both rows (committed before anyone hears of it),
        # and the caller is still waiting (it hears of its change after the subscribers).
        alert_id = events[-1].alert_id
        seen.append(
            (
                caller_resumed,
                backend.query("SELECT version FROM alerts WHERE id = ?", alert_id),
                backend.query("SELECT seq FROM events WHERE alert_id = ? ORDER BY seq", alert_id),
            )
        )
        recorder(events)

    store.on_commit = on_commit
    alert = await alerts.create(alert_input(), "device-7")
    caller_resumed = True
    assert [decode(e).alert for e in recorder.events] == [alert]
    caller_resumed = False
    escalated = await alerts.escalate(alert.id, "nurse-1", "no answer")
    assert [decode(e).alert for e in recorder.events] == [alert, escalated]
    first, second = ((e.seq,) for e in recorder.events)
    assert seen == [(False, [(1,)], [first]), (False, [(2,)], [first, second])]


async def test_a_failed_event_write_leaves_no_alert_row(
    backend: Backend, store: AnyStore, clock: FakeClock
) -> None:
    change = lifecycle.create("al_x", alert_input(), "device-7", clock())

    async def operation(tx: Transaction) -> None:
        record = AlertRecord(change.alert, clock(), None, None)
        staged = StagedChange(record, change.event_type, "device-7", clock(), None)
        tx.stage(staged, lambda seq: cast(bytes, None))  # events.payload is NOT NULL

    with pytest.raises(backend.integrity_error):
        await store.transact(operation)
    assert backend.query("SELECT COUNT(*) FROM alerts") == [(0,)]
    assert published(store).events == []
    assert await store.get("al_x") is None


async def test_a_failing_operation_does_not_affect_its_batch(
    backend: Backend, store: AnyStore, alerts: AlertService, clock: FakeClock
) -> None:
    target = await alerts.create(alert_input(), "device-7")
    log = published(store)
    log.events.clear()
    log.calls = 0

    async def fails_after_staging(tx: Transaction) -> None:
        await stage_escalation(tx, target.id, "ghost", clock())
        raise RuntimeError("boom")

    results = await asyncio.gather(
        alerts.acknowledge(target.id, "nurse-1", None),
        store.transact(fails_after_staging),
        alerts.escalate(target.id, "nurse-2", None),
        alerts.create(alert_input(title="Another"), "device-8"),
        return_exceptions=True,
    )

    acked, failure, escalated, other = results
    assert isinstance(failure, RuntimeError)
    assert log.calls == 1  # all four went in one batch
    assert not isinstance(escalated, BaseException)
    assert not isinstance(acked, BaseException)
    assert (acked.version, escalated.version) == (2, 3)  # the failed stage was not seen
    assert [decode(e).actor_id for e in log.events] == ["nurse-1", "nurse-2", "device-8"]
    assert not isinstance(other, BaseException)
    assert [decode(e).alert for e in log.events] == [acked, escalated, other]
    actors = backend.query("SELECT actor_id FROM events ORDER BY seq")
    assert ("ghost",) not in actors
    record = await store.get(target.id)
    assert record is not None
    assert record.alert == escalated


async def test_a_failing_publish_does_not_stop_the_writer(
    store: AnyStore, alerts: AlertService
) -> None:
    def broken(events: Any) -> None:
        raise RuntimeError("a subscriber blew up")

    store.on_commit = broken
    created = await asyncio.wait_for(alerts.create(alert_input(), "device-7"), 5)
    escalated = await asyncio.wait_for(alerts.escalate(created.id, "nurse-1", None), 5)
    assert escalated.version == 2
    record = await store.get(created.id)
    assert record is not None
    assert record.alert == escalated


# --- two writers on one database --------------------------------------------------------------


async def test_two_stores_on_one_database_never_lose_an_update(
    backend: Backend, clock: FakeClock
) -> None:
    """Racing clinicians on two writers: every escalation succeeds in turn (a stale copy is
    read again and the change applied to the committed state), none is lost."""
    async with open_store(backend) as first, open_store(backend) as second:
        alert = await service(first, clock).create(alert_input(), "device-7")
        for store in (first, second):
            assert await store.get(alert.id) is not None  # both have read version 1

        calls = [
            service(store, clock).escalate(alert.id, f"nurse-{i}", None)
            for i in range(6)
            for store in (first, second)
        ]
        results = await asyncio.gather(*calls, return_exceptions=True)

        assert [r for r in results if isinstance(r, BaseException)] == []
        assert first.reruns + second.reruns > 0, "the race must have made a copy stale"
        events = backend.query(
            "SELECT payload FROM events WHERE alert_id = ? ORDER BY seq", alert.id
        )
        versions = [orjson.loads(row[0])["alert"]["version"] for row in events]
        assert versions == list(range(1, len(calls) + 2))
        levels = [orjson.loads(row[0])["alert"]["escalationLevel"] for row in events]
        assert levels == list(range(len(calls) + 1))
        heard = published(first).events + published(second).events
        assert sorted(decode(e).alert.version for e in heard) == versions
        assert len({e.seq for e in heard}) == len(heard)
        for store in (first, second):
            ids = [e.id for e in published(store).events]
            assert ids == sorted(set(ids))  # each writer's ids increase, none reused


async def test_a_stale_change_is_applied_to_the_committed_state_and_spares_its_batch(
    backend: Backend, clock: FakeClock
) -> None:
    async with open_store(backend) as first, open_store(backend) as second:
        alert = await service(first, clock).create(alert_input(), "device-7")
        assert await second.get(alert.id) is not None  # cached at version 1
        await service(first, clock).escalate(alert.id, "nurse-1", None)  # now version 2
        commits = second.commits

        stale = service(second, clock)
        update = UpdateAlertInput(alert_id=alert.id, priority="critical")
        updated, created = await asyncio.gather(
            stale.update(update, "charge-1"), stale.create(alert_input(title="Other"), "dev-8")
        )

        assert second.commits == commits + 1  # one batch, run again once on fresh reads
        assert second.reruns == 1
        assert (updated.version, updated.escalation_level) == (3, 1)  # on top of version 2
        assert updated.priority == "critical"
        assert created.version == 1
        rows = backend.query("SELECT alert_id, type FROM events ORDER BY seq")
        assert rows[-2:] == [(alert.id, "alert.updated"), (created.id, "alert.created")]


async def test_a_stale_change_gets_the_conflict_of_the_committed_state(
    backend: Backend, clock: FakeClock
) -> None:
    async with open_store(backend) as first, open_store(backend) as second:
        alert = await service(first, clock).create(alert_input(), "device-7")
        assert await second.get(alert.id) is not None  # cached: active, version 1
        await service(first, clock).resolve(alert.id, "nurse-1", None)  # now resolved

        stale = service(second, clock)
        acked, created = await asyncio.gather(
            stale.acknowledge(alert.id, "nurse-2", None),
            stale.create(alert_input(title="Other"), "dev-8"),
            return_exceptions=True,
        )

        assert isinstance(acked, RpcError)
        assert acked.code is ErrorCode.CONFLICT
        assert acked.data == {"alertId": alert.id, "status": "resolved", "version": 2}
        assert isinstance(created, Alert)
        assert backend.query("SELECT COUNT(*) FROM alerts") == [(2,)]


async def test_a_batch_that_stays_stale_gives_up_with_conflict_and_publishes_nothing(
    backend: Backend, clock: FakeClock
) -> None:
    """The retries are bounded: an operation that stages on an old version every time it
    runs (a writer that keeps losing) ends with CONFLICT for its batch, and nothing of it is
    written or published."""
    async with open_store(backend) as store:
        alert = await service(store, clock).create(alert_input(), "device-7")
        await service(store, clock).escalate(alert.id, "nurse-1", None)  # version 2
        stale = AlertRecord(alert, clock(), None, None)  # version 1, every time
        runs = 0

        async def always_stale(tx: Transaction) -> None:
            nonlocal runs
            runs += 1
            change = lifecycle.escalate(stale.alert, "ghost", clock())
            record = AlertRecord(change.alert, clock(), None, None)
            staged = StagedChange(record, change.event_type, "ghost", clock(), None)
            tx.stage(staged, lambda seq: event_payload(seq, change, "ghost", clock()))

        before = list(published(store).events)
        results = await asyncio.gather(
            store.transact(always_stale),
            service(store, clock).create(alert_input(title="Other"), "device-8"),
            return_exceptions=True,
        )

        assert runs == CONFLICT_RETRIES + 1
        assert store.reruns == CONFLICT_RETRIES
        assert all(isinstance(r, RpcError) and r.code is ErrorCode.CONFLICT for r in results)
        assert published(store).events == before
        assert backend.query("SELECT COUNT(*) FROM alerts") == [(1,)]
        assert ("ghost",) not in backend.query("SELECT actor_id FROM events")


async def test_closing_fails_what_is_in_flight_with_an_error_to_report(backend: Backend) -> None:
    store = backend.new_store()
    await store.open()
    entered = asyncio.Event()

    async def stuck(tx: Transaction) -> None:
        entered.set()
        await asyncio.Event().wait()

    async def quick(tx: Transaction) -> None:
        return None

    in_flight = asyncio.create_task(store.transact(stuck))
    behind = asyncio.create_task(store.transact(quick))
    await asyncio.wait_for(entered.wait(), 5)
    await store.close()
    for task in (in_flight, behind):
        with pytest.raises(RpcError) as exc:
            await task
        assert exc.value.code is ErrorCode.SERVICE_UNAVAILABLE
