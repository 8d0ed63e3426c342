"""services/store_sqlite.py and services/sqlite_schema.py on a real file, the writing side:
migrations, durable and increasing event ids, commit-then-publish, batch isolation, two writers
on one file, closing. Reads, the audit log and retention are in test_store_sqlite_reads.py."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, cast

import aiosqlite
import orjson
import pytest

from rpc.errors import ErrorCode, RpcError
from schemas.alerts import Alert
from services import lifecycle
from services.alerts import AlertService, event_payload
from services.config import DEFAULT_TARGETS
from services.sqlite_schema import SCHEMA_VERSION, SchemaError, migrate, schema_version
from services.store import AlertRecord, StagedChange, StoredEvent, Transaction, format_event_id
from services.store_sqlite import SqliteAlertStore
from tests.services.conftest import (
    FakeClock,
    alert_input,
    decode,
    open_store,
    published,
    query,
)


def service(store: SqliteAlertStore, clock: FakeClock) -> AlertService:
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


# --- migrations -------------------------------------------------------------------------------


async def test_migrations_run_once_and_set_user_version(tmp_path: Path) -> None:
    path = str(tmp_path / "m.db")
    async with aiosqlite.connect(path) as db:
        assert await migrate(db) == 0
        assert await schema_version(db) == SCHEMA_VERSION
        assert await migrate(db) == SCHEMA_VERSION  # nothing left to run: no "already exists"
    tables = {r[0] for r in query(path, "SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"alerts", "events", "prune_marks"} <= tables


async def test_reopening_keeps_the_data(tmp_path: Path, clock: FakeClock) -> None:
    path = str(tmp_path / "r.db")
    async with open_store(path) as store:
        alert = await service(store, clock).create(alert_input(), "device-7")
        acked = await service(store, clock).acknowledge(alert.id, "nurse-1", None)

    async with open_store(path) as store:
        record = await store.get(alert.id)
        assert record is not None
        assert record.alert == acked
        assert query(path, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
        assert [decode(e).type for e in await store.events_after("h1", 0, 10)] == [
            "alert.created",
            "alert.acknowledged",
        ]


async def test_first_start_of_two_stores_on_one_new_file(tmp_path: Path) -> None:
    """Two processes starting together on a fresh file: both open, the schema is made once."""
    path = str(tmp_path / "twice.db")
    first, second = SqliteAlertStore(path), SqliteAlertStore(path)
    results = await asyncio.gather(first.open(), second.open(), return_exceptions=True)
    for store in (first, second):
        await store.close()
    assert list(results) == [None, None]
    assert query(path, "PRAGMA user_version") == [(SCHEMA_VERSION,)]


async def test_a_newer_database_is_refused(tmp_path: Path) -> None:
    path = str(tmp_path / "newer.db")
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    store = SqliteAlertStore(path)
    with pytest.raises(SchemaError, match=r"knows up to"):
        await store.open()
    assert not await store.healthy()
    # Refusing released the file: no connection (and no worker thread) was left behind.
    assert store._db is None
    assert store._reader is None
    assert query(path, "PRAGMA user_version") == [(SCHEMA_VERSION + 1,)]


# --- event ids --------------------------------------------------------------------------------


async def test_event_ids_increase_across_restarts(tmp_path: Path, clock: FakeClock) -> None:
    path = str(tmp_path / "ids.db")
    ids: list[str] = []
    for _ in range(3):
        async with open_store(path) as store:
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
    store: SqliteAlertStore, alerts: AlertService
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
                query(store.path, "SELECT version FROM alerts WHERE id = ?", alert_id),
                query(store.path, "SELECT seq FROM events WHERE alert_id = ?", alert_id),
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
    store: SqliteAlertStore, clock: FakeClock
) -> None:
    change = lifecycle.create("al_x", alert_input(), "device-7", clock())

    async def operation(tx: Transaction) -> None:
        record = AlertRecord(change.alert, clock(), None, None)
        staged = StagedChange(record, change.event_type, "device-7", clock(), None)
        tx.stage(staged, lambda seq: cast(bytes, None))  # events.payload is NOT NULL

    with pytest.raises(sqlite3.IntegrityError):
        await store.transact(operation)
    assert query(store.path, "SELECT COUNT(*) FROM alerts") == [(0,)]
    assert published(store).events == []
    assert await store.get("al_x") is None


async def test_a_failing_operation_does_not_affect_its_batch(
    store: SqliteAlertStore, alerts: AlertService, clock: FakeClock
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
    actors = query(store.path, "SELECT actor_id FROM events ORDER BY seq")
    assert ("ghost",) not in actors
    record = await store.get(target.id)
    assert record is not None
    assert record.alert == escalated


async def test_a_failing_publish_does_not_stop_the_writer(
    store: SqliteAlertStore, alerts: AlertService
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


async def at_most_one_conflict(call: Callable[[], Awaitable[Alert]]) -> Alert:
    try:
        return await call()
    except RpcError as exc:
        if exc.code is not ErrorCode.CONFLICT:
            raise
    return await call()


# --- two writers on one file ------------------------------------------------------------------


async def test_two_stores_on_one_file_never_lose_an_update(
    tmp_path: Path, clock: FakeClock
) -> None:
    path = str(tmp_path / "shared.db")
    async with open_store(path) as first, open_store(path) as second:
        alert = await service(first, clock).create(alert_input(), "device-7")
        for store in (first, second):
            assert await store.get(alert.id) is not None  # both have read version 1

        calls = [
            service(store, clock).escalate(alert.id, f"nurse-{i}", None)
            for i in range(6)
            for store in (first, second)
        ]
        results = await asyncio.gather(*calls, return_exceptions=True)

        succeeded = [r for r in results if not isinstance(r, BaseException)]
        failed = [r for r in results if isinstance(r, BaseException)]
        assert failed, "a stale writer must be refused"
        assert all(isinstance(f, RpcError) and f.code is ErrorCode.CONFLICT for f in failed)
        events = query(path, "SELECT payload FROM events WHERE alert_id = ? ORDER BY seq", alert.id)
        versions = [orjson.loads(row[0])["alert"]["version"] for row in events]
        assert versions == list(range(1, len(succeeded) + 2))
        heard = published(first).events + published(second).events
        assert sorted(decode(e).alert.version for e in heard) == versions
        assert len({e.seq for e in heard}) == len(heard)

        # Having lost, a store reads the alert again: it is never stuck on a stale copy.
        for store in (second, first):
            escalate = functools.partial(service(store, clock).escalate, alert.id, "nurse-9", None)
            again = await at_most_one_conflict(escalate)
            assert again.version == versions[-1] + 1
            versions.append(again.version)
            other = await service(store, clock).create(alert_input(title="More"), "device-8")
            assert other.version == 1
        for store in (first, second):
            ids = [e.id for e in published(store).events]
            assert ids == sorted(set(ids))  # each writer's ids increase, none reused


async def test_a_read_racing_a_commit_does_not_leave_a_stale_alert(
    tmp_path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reader that fetched version 1 and finishes after version 2 committed must not make
    the next change start from version 1 (which the version check would then refuse)."""
    path = str(tmp_path / "race.db")
    async with open_store(path) as store:
        alert = await service(store, clock).create(alert_input(), "device-7")
    async with open_store(path) as store:  # nothing cached
        await gated_read_racing_a_commit(store, alert, clock, monkeypatch)


async def gated_read_racing_a_commit(
    store: SqliteAlertStore, alert: Alert, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = asyncio.Event()
    fetched = asyncio.Event()
    reader = store._reader
    assert reader is not None
    execute = reader.execute

    class GatedCursor:
        def __init__(self, cursor: Any) -> None:
            self._cursor = cursor

        async def fetchone(self) -> Any:
            row = await self._cursor.fetchone()
            fetched.set()
            await gate.wait()
            return row

    @contextlib.asynccontextmanager
    async def gated_execute(sql: str, args: Any = ()) -> Any:
        async with execute(sql, args) as cursor:
            yield GatedCursor(cursor)

    monkeypatch.setattr(reader, "execute", gated_execute)
    slow_read = asyncio.create_task(store.get(alert.id))
    await asyncio.wait_for(fetched.wait(), 5)  # it has version 1 in hand
    escalated = await service(store, clock).escalate(alert.id, "nurse-1", None)
    gate.set()
    stale = await slow_read
    assert stale is not None
    assert stale.alert.version == 1
    monkeypatch.undo()
    later = await service(store, clock).escalate(alert.id, "nurse-2", None)
    assert later.version == escalated.version + 1
    record = await store.get(alert.id)
    assert record is not None
    assert record.alert == later


async def test_closing_fails_what_is_in_flight_with_an_error_to_report(tmp_path: Path) -> None:
    store = SqliteAlertStore(str(tmp_path / "closing.db"))
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


async def test_event_ids_continue_after_a_fully_pruned_log(
    tmp_path: Path, clock: FakeClock
) -> None:
    """A log whose every event was pruned (as an older version could leave it) still never
    hands out an id at or below what was pruned."""
    path = str(tmp_path / "pruned.db")
    async with open_store(path):
        pass
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        db.execute("INSERT INTO prune_marks (hospital_id, pruned_through) VALUES ('h9', 500)")
    async with open_store(path) as store:
        await service(store, clock).create(alert_input(), "device-7")
        assert [e.seq for e in published(store).events] == [501]
