"""services/store_sqlite.py, the batch path: operations staged in the loop, then one
call on the writer's thread per batch. How many calls reach the database threads is counted
at aiosqlite's own queue to each thread, so the count is the store's, whatever its code
says. Conflicts, a failed batch, positions taken by another writer, order across batches."""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import aiosqlite
import orjson
import pytest

from rpc.errors import ErrorCode, RpcError
from schemas.alerts import Alert
from services import lifecycle
from services.alerts import AlertService
from services.config import DEFAULT_TARGETS
from services.sqlite_batch import BatchWrite, Renumber, run_on_thread
from services.store import AlertRecord, StagedChange, StoredEvent, Transaction
from services.store_sqlite import RENUMBER_ATTEMPTS, SqliteAlertStore
from tests.services.conftest import FakeClock, alert_input, decode
from tests.services.stores import SqliteBackend, open_sqlite, published
from tests.services.stores import sqlite_query as query


class ThreadCalls:
    """Put in front of an aiosqlite connection's queue to its thread: counts each function
    handed to that thread (each one is a hop there and a reply back through the loop)."""

    def __init__(self, db: aiosqlite.Connection | None) -> None:
        assert db is not None
        self._queue = db._tx
        db._tx = self  # type: ignore[assignment]
        self.calls = 0
        self._waiting: list[tuple[int, asyncio.Event]] = []

    def put_nowait(self, item: Any) -> None:
        self.calls += 1
        for count, event in self._waiting:
            if self.calls >= count:
                event.set()
        self._queue.put_nowait(item)

    async def reach(self, count: int) -> None:
        event = asyncio.Event()
        self._waiting.append((count, event))
        if self.calls >= count:
            event.set()
        await asyncio.wait_for(event.wait(), 5)


def numbered_ids() -> Any:
    return (f"al_{n}" for n in itertools.count()).__next__


@pytest.fixture
def backend(tmp_path: Path) -> SqliteBackend:
    """This file is about the SQLite store alone (the contract suites run on both)."""
    return SqliteBackend(str(tmp_path / "alertwire.db"))


@pytest.fixture
def alerts(store: SqliteAlertStore, clock: FakeClock) -> AlertService:
    return AlertService(store, dict(DEFAULT_TARGETS), clock, new_id=numbered_ids())


def seqs_in_file(path: str) -> list[int]:
    return [row[0] for row in query(path, "SELECT seq FROM events ORDER BY seq")]


def assert_ids_match_positions(events: Sequence[StoredEvent]) -> None:
    """Each event's payload names the position it was committed at."""
    for event in events:
        assert orjson.loads(event.payload)["id"] == event.id


# --- one round trip per batch -----------------------------------------------------------------


async def test_a_batch_is_one_call_on_the_writers_thread(
    store: SqliteAlertStore, alerts: AlertService
) -> None:
    first = await alerts.create(alert_input(), "device-7")  # cached from here on
    writer, reader = ThreadCalls(store._db), ThreadCalls(store._reader)
    commits = store.commits

    results = await asyncio.gather(
        *(alerts.create(alert_input(title=f"bed {n}"), f"device-{n}") for n in range(5)),
        alerts.acknowledge(first.id, "nurse-1", None),
        alerts.escalate(first.id, "nurse-2", None),
    )

    assert (store.commits, writer.calls, reader.calls) == (commits + 1, 1, 0)
    assert published(store).calls == 2  # the first create's batch, then this one
    assert [e.alert_id for e in published(store).events[1:]] == [r.id for r in results]
    assert results[-1].version == 3

    await alerts.resolve(first.id, "nurse-1", None)
    assert (store.commits, writer.calls, reader.calls) == (commits + 2, 2, 0)


async def test_an_alert_not_in_the_cache_costs_one_read_before_the_write(
    tmp_path: Path, clock: FakeClock
) -> None:
    path = str(tmp_path / "cold.db")
    async with open_sqlite(path) as store:
        alert = await AlertService(store, dict(DEFAULT_TARGETS), clock).create(
            alert_input(), "device-7"
        )
    async with open_sqlite(path) as store:  # nothing cached
        writer = ThreadCalls(store._db)
        escalated = await AlertService(store, dict(DEFAULT_TARGETS), clock).escalate(
            alert.id, "nurse-1", None
        )
        assert escalated.version == 2
        assert writer.calls == 2


# --- conflicts and failures -------------------------------------------------------------------


async def test_a_stale_alert_makes_its_batch_run_again_and_nothing_stale_is_published(
    tmp_path: Path, clock: FakeClock
) -> None:
    path = str(tmp_path / "shared.db")
    async with open_sqlite(path) as first, open_sqlite(path) as second:
        service = AlertService(first, dict(DEFAULT_TARGETS), clock, new_id=numbered_ids())
        alert = await service.create(alert_input(), "device-7")
        await AlertService(second, dict(DEFAULT_TARGETS), clock).escalate(alert.id, "n-2", None)
        before = list(published(first).events)
        on_file = seqs_in_file(path)

        escalated, created = await asyncio.gather(
            service.escalate(alert.id, "nurse-1", None),  # from the cached version 1
            service.create(alert_input(title="unrelated"), "device-8"),
        )

        assert first.reruns == 1  # refused once, then run on the committed version 2
        assert (escalated.version, escalated.escalation_level) == (3, 2)
        assert created.version == 1
        new = published(first).events[len(before) :]
        assert [decode(e).alert for e in new] == [escalated, created]
        assert_ids_match_positions(published(first).events)
        assert seqs_in_file(path) == sorted({*on_file, *(e.seq for e in new)})
        assert query(path, "SELECT COUNT(*) FROM alerts") == [(2,)]


async def test_a_failed_batch_publishes_nothing_and_the_next_one_goes_on(
    store: SqliteAlertStore, alerts: AlertService, clock: FakeClock
) -> None:
    existing = await alerts.create(alert_input(), "device-7")
    log = published(store)
    log.events.clear()
    log.calls = 0
    change = lifecycle.create("al_bad", alert_input(), "device-7", clock())

    async def unwritable(tx: Transaction) -> None:
        record = AlertRecord(change.alert, clock(), None, None)
        staged = StagedChange(record, change.event_type, "device-7", clock(), None)
        tx.stage(staged, lambda seq: cast(bytes, None))  # events.payload is NOT NULL

    results = await asyncio.gather(
        alerts.create(alert_input(title="good"), "device-8"),
        store.transact(unwritable),
        alerts.escalate(existing.id, "nurse-1", None),
        return_exceptions=True,
    )

    assert all(isinstance(r, sqlite3.IntegrityError) for r in results)
    assert (log.calls, log.events) == (0, [])
    assert query(store.path, "SELECT id, version FROM alerts") == [(existing.id, 1)]
    escalated = await alerts.escalate(existing.id, "nurse-1", None)  # nothing stale was kept
    assert escalated.version == 2
    assert [e.seq for e in log.events] == [seqs_in_file(store.path)[-1]]
    assert_ids_match_positions(log.events)


async def test_positions_taken_by_another_writer_are_numbered_again_in_the_loop(
    tmp_path: Path, clock: FakeClock
) -> None:
    path = str(tmp_path / "shared.db")
    async with open_sqlite(path) as first, open_sqlite(path) as second:
        service = AlertService(first, dict(DEFAULT_TARGETS), clock)
        await service.create(alert_input(), "device-7")
        for n in range(3):  # positions `first` does not know of
            await AlertService(second, dict(DEFAULT_TARGETS), clock).create(
                alert_input(title=f"other {n}"), "device-9"
            )
        writer = ThreadCalls(first._db)

        created = await asyncio.gather(
            *(service.create(alert_input(title=f"bed {n}"), "device-7") for n in range(2))
        )

        assert writer.calls == 2  # the first attempt found the positions taken
        events = published(first).events[1:]
        assert [e.alert_id for e in events] == [a.id for a in created]
        assert [e.seq for e in events] == seqs_in_file(path)[-2:] == [5, 6]
        assert_ids_match_positions(events)
        await service.create(alert_input(title="after"), "device-7")
        assert (writer.calls, published(first).events[-1].seq) == (3, 7)  # known from now on


async def test_a_batch_that_keeps_losing_its_positions_gives_up_with_conflict(
    store: SqliteAlertStore, alerts: AlertService, monkeypatch: pytest.MonkeyPatch
) -> None:
    attempts: list[int] = []

    def always_taken(conn: sqlite3.Connection, batch: BatchWrite) -> Renumber:
        attempts.append(batch.first_seq)
        return Renumber(batch.first_seq + 10)

    monkeypatch.setattr("services.store_sqlite.write_batch", always_taken)
    with pytest.raises(RpcError) as exc:
        await alerts.create(alert_input(), "device-7")
    assert exc.value.code is ErrorCode.CONFLICT
    assert attempts == [1, 11, 21][:RENUMBER_ATTEMPTS]
    assert published(store).events == []
    monkeypatch.undo()
    created = await alerts.create(alert_input(), "device-7")
    assert [e.alert_id for e in published(store).events] == [created.id]


async def test_a_failing_prune_fails_alone_in_its_batch(
    store: SqliteAlertStore, alerts: AlertService, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(conn: sqlite3.Connection, before_ts: float) -> dict[str, int]:
        conn.execute("DELETE FROM events")
        raise OSError("disk trouble")

    existing = await alerts.create(alert_input(), "device-7")
    monkeypatch.setattr("services.store_sqlite.prune_events", fail)
    writer = ThreadCalls(store._db)

    pruned, created = await asyncio.gather(
        store.prune(clock()),
        alerts.create(alert_input(title="same batch"), "device-8"),
        return_exceptions=True,
    )

    assert isinstance(pruned, OSError)
    assert isinstance(created, Alert)
    assert writer.calls == 1
    alert_ids = [row[0] for row in query(store.path, "SELECT alert_id FROM events ORDER BY seq")]
    assert alert_ids == [existing.id, created.id]


# --- order across batches ---------------------------------------------------------------------


async def test_batches_commit_and_publish_in_order_each_seeing_the_last(
    store: SqliteAlertStore, alerts: AlertService
) -> None:
    release = threading.Event()
    writer = ThreadCalls(store._db)
    db = store._db
    assert db is not None
    held = asyncio.ensure_future(run_on_thread(db, lambda conn: release.wait(5)))
    heard: list[tuple[list[str], bool]] = []
    log = published(store)

    def on_commit(events: Sequence[StoredEvent]) -> None:
        heard.append(([e.alert_id for e in events], all(t.done() for t in first)))
        log(events)

    store.on_commit = on_commit
    try:
        first = [asyncio.ensure_future(alerts.create(alert_input(), "dev")) for _ in range(3)]
        await writer.reach(2)  # the first batch, staged, waits behind the held thread
        second = [
            asyncio.ensure_future(alerts.escalate("al_0", "nurse-1", None)),
            asyncio.ensure_future(alerts.create(alert_input(), "dev")),
        ]
        await asyncio.sleep(0)  # one pass of the loop: each task queues its operation
        assert store.waiting_writes == 2
    finally:
        release.set()
    await held
    created = await asyncio.gather(*first)
    escalated, later = await asyncio.gather(*second)

    assert [a.id for a in created] == ["al_0", "al_1", "al_2"]
    assert heard == [(["al_0", "al_1", "al_2"], False), (["al_0", "al_3"], True)]
    assert escalated.version == 2  # staged on the first batch's committed alert
    assert later.id == "al_3"
    assert [e.seq for e in log.events] == seqs_in_file(store.path) == [1, 2, 3, 4, 5]
    assert writer.calls == 3
    assert [decode(e).alert.version for e in log.events] == [1, 1, 1, 2, 1]
