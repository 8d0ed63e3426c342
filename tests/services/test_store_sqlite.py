"""What only the SQLite store has, on a real file: PRAGMA user_version migrations, its reader
connection, and one global sequence of event ids. Everything the seam promises runs on every
store in test_store_contract.py and test_store_contract_reads.py."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from pathlib import Path
from typing import Any

import aiosqlite
import pytest

from schemas.alerts import Alert
from services.alerts import AlertService
from services.config import DEFAULT_TARGETS
from services.sqlite_schema import SCHEMA_VERSION, SchemaError, migrate, schema_version
from services.store_sqlite import SqliteAlertStore
from tests.services.conftest import FakeClock, alert_input
from tests.services.stores import SqliteBackend, open_store, published, sqlite_query


def service(store: Any, clock: FakeClock) -> AlertService:
    return AlertService(store, dict(DEFAULT_TARGETS), clock)


def sqlite_store(path: str) -> Any:
    """A store on the file, opened and closed around the block (its commits recorded)."""
    return open_store(SqliteBackend(path))


async def test_migrations_run_once_and_set_user_version(tmp_path: Path) -> None:
    path = str(tmp_path / "m.db")
    async with aiosqlite.connect(path) as db:
        assert await migrate(db) == 0
        assert await schema_version(db) == SCHEMA_VERSION
        assert await migrate(db) == SCHEMA_VERSION  # nothing left to run: no "already exists"
    tables = {
        r[0] for r in sqlite_query(path, "SELECT name FROM sqlite_master WHERE type = 'table'")
    }
    assert {"alerts", "events", "prune_marks"} <= tables


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
    assert sqlite_query(path, "PRAGMA user_version") == [(SCHEMA_VERSION + 1,)]


async def test_a_read_racing_a_commit_does_not_leave_a_stale_alert(
    tmp_path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reader that fetched version 1 and finishes after version 2 committed must not make
    the next change start from version 1 (which the version check would then refuse)."""
    path = str(tmp_path / "race.db")
    async with sqlite_store(path) as store:
        alert = await service(store, clock).create(alert_input(), "device-7")
    async with sqlite_store(path) as store:  # nothing cached
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


async def test_event_ids_continue_after_a_fully_pruned_log(
    tmp_path: Path, clock: FakeClock
) -> None:
    """A log whose every event was pruned (as an older version could leave it) still never
    hands out an id at or below what was pruned."""
    path = str(tmp_path / "pruned.db")
    async with sqlite_store(path):
        pass
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        db.execute("INSERT INTO prune_marks (hospital_id, pruned_through) VALUES ('h9', 500)")
    async with sqlite_store(path) as store:
        await service(store, clock).create(alert_input(), "device-7")
        assert [e.seq for e in published(store).events] == [501]
