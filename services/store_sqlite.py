"""The embedded alert store: SQLite through aiosqlite, WAL, migrations at start-up.

Writes are group-committed: operations queue up, and one writer task runs every waiting
operation in the event loop (they read alerts, from the cache or the file, and stage
changes), then hands the whole batch to the writer connection's thread in one call
(services/sqlite_batch.py): BEGIN, the position check, the version checks, every insert and
COMMIT there, so a batch costs one round trip through the loop, whatever it holds. Each
alert row is upserted only if its stored version is the one the change started from, so a
second writer on the same file can never cause a lost update: the transaction rolls back,
nothing of it is published, and the batch runs again on fresh reads (services/store.py).

A reader connection serves queries (WAL lets it read while the writer commits). With an
in-memory database both roles share one connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from rpc.errors import ErrorCode, RpcError
from schemas.alerts import Alert
from services.alert_cache import AlertCache
from services.private_files import prepare_sqlite_files
from services.sqlite_batch import (
    BatchWrite,
    Committed,
    Step,
    key_owner,
    newest_seq,
    run_on_thread,
    write_batch,
)
from services.sqlite_reads import SqliteReads
from services.sqlite_retention import prune_events, prune_keys
from services.sqlite_schema import migrate, use_wal
from services.store import (
    CONFLICT_RETRIES,
    AlertRecord,
    StagedChange,
    StoredEvent,
    Transaction,
    VersionConflict,
    timed,
)
from services.write_queue import shut_out, write_in_batches

log = logging.getLogger("alertwire.store")

T = TypeVar("T")
# Times a batch is numbered again because another writer on the file took its positions
# first, before it gives up with CONFLICT.
RENUMBER_ATTEMPTS = 3

SELECT_ALERT = "SELECT body, created_ts, responded_ts, escalation_due FROM alerts WHERE id = ?"


def _record(row: Any) -> AlertRecord:
    return AlertRecord(Alert.model_validate_json(row[0]), row[1], row[2], row[3])


def _select_alert(conn: sqlite3.Connection, alert_id: str) -> Any:
    return conn.execute(SELECT_ALERT, (alert_id,)).fetchone()


def _event(change: StagedChange, seq: int, make_event: Callable[[int], bytes]) -> StoredEvent:
    alert = change.record.alert
    return StoredEvent(seq, alert.hospital_id, alert.id, make_event(seq))


@dataclass
class _Staged:
    change: StagedChange
    make_event: Callable[[int], bytes]  # kept to number the event again (`_commit`)
    event: StoredEvent


async def _no_operation(tx: Transaction) -> None:
    return None


def _new_future() -> asyncio.Future[Any]:
    return asyncio.get_running_loop().create_future()


@dataclass
class _Pending:
    """One caller's work in a batch: an operation staged in the loop, or a step run inside
    the transaction on the database thread (retention)."""

    operation: Callable[[Transaction], Awaitable[Any]] = _no_operation
    step: Step | None = None
    future: asyncio.Future[Any] = field(default_factory=_new_future)
    changes: list[_Staged] = field(default_factory=list)
    value: Any = None
    error: Exception | None = None


class _BatchTx:
    """One operation's view of the batch: earlier operations' staged records are visible."""

    def __init__(self, store: SqliteAlertStore, pending: _Pending) -> None:
        self._store = store
        self._pending = pending

    async def get(self, alert_id: str) -> AlertRecord | None:
        for staged in reversed(self._pending.changes):
            if staged.change.record.alert.id == alert_id:
                return staged.change.record
        record = self._store._staged.get(alert_id)
        if record is not None:
            return record
        return await self._store._load_for_write(alert_id)

    async def created_by_key(self, hospital_id: str, key: str, since: float) -> str | None:
        for staged in self._pending.changes:
            change = staged.change
            if change.idempotency_key == key and change.record.alert.hospital_id == hospital_id:
                return change.record.alert.id
        claimed = self._store._staged_keys.get((hospital_id, key))
        if claimed is not None:
            return claimed
        find = functools.partial(key_owner, hospital_id=hospital_id, key=key, since=since)
        return await run_on_thread(self._store._conn(), find)

    def stage(self, change: StagedChange, make_event: Callable[[int], bytes]) -> StoredEvent:
        seq = self._store._next_seq
        self._store._next_seq += 1
        event = _event(change, seq, make_event)
        self._pending.changes.append(_Staged(change, make_event, event))
        return event


class SqliteAlertStore(SqliteReads):
    def __init__(self, path: str, synchronous: str = "FULL") -> None:
        self.path = path
        self.synchronous = synchronous
        self.on_commit: Callable[[Sequence[StoredEvent]], None] = lambda events: None
        self._db: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None
        self._next_seq = 1
        self._batch_start = 1  # the position the batch being written numbers its events from
        self._staged: dict[str, AlertRecord] = {}
        self._staged_keys: dict[tuple[str, str], str] = {}  # the batch's keys -> alert ids
        self._cache = AlertCache()
        self.commits = 0  # write transactions committed (each carries a whole batch)
        # Told how long each batch took to commit (the commit-duration histogram), if set.
        self.on_commit_seconds: Callable[[float], None] | None = None
        self.reruns = 0  # batches run again on fresh reads after a failed version check

    # --- lifecycle ------------------------------------------------------------------------

    async def open(self) -> None:
        if self.path != ":memory:":
            # 0600 before SQLite first opens it, so its -wal and -shm are born 0600 too.
            prepare_sqlite_files(Path(self.path))
        try:
            self._db = await self._connect()
            await migrate(self._db)
            self._reader = self._db if self.path == ":memory:" else await self._connect()
            self._next_seq = await run_on_thread(self._db, newest_seq) + 1
        except BaseException:
            await self.close()  # a refused or broken file leaves no connection (thread) behind
            raise
        self._writer = asyncio.create_task(
            write_in_batches(self._queue, self._run_batch), name="alert-store-writer"
        )

    async def _connect(self) -> aiosqlite.Connection:
        db = await aiosqlite.connect(self.path, isolation_level=None)
        try:
            # First, so that the other pragmas (WAL needs a lock) wait for another process too.
            await db.execute("PRAGMA busy_timeout=5000")
            await use_wal(db)
            await db.execute(f"PRAGMA synchronous={self.synchronous}")
            await db.execute("PRAGMA foreign_keys=ON")
        except BaseException:
            await db.close()
            raise
        return db

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
            self._writer = None
        while not self._queue.empty():
            shut_out(self._queue.get_nowait())
        for db in {id(c): c for c in (self._reader, self._db) if c is not None}.values():
            await db.close()
        self._db = self._reader = None

    async def healthy(self) -> bool:
        try:
            async with self._conn(read=True).execute("SELECT 1") as cur:
                return await cur.fetchone() is not None
        except Exception:
            return False

    def _conn(self, read: bool = False) -> aiosqlite.Connection:
        db = self._reader if read else self._db
        if db is None:
            raise RpcError(ErrorCode.SERVICE_UNAVAILABLE, "Storage is not open")
        return db

    # --- writes ---------------------------------------------------------------------------

    @property
    def waiting_writes(self) -> int:
        """Operations queued for the next write transaction (not yet taken by the writer)."""
        return self._queue.qsize()

    async def transact(self, operation: Callable[[Transaction], Awaitable[T]]) -> T:
        value: T = await self._submit(_Pending(operation))
        return value

    async def prune(self, before_ts: float) -> dict[str, int]:
        # A step of the next batch, in a savepoint of its own: a prune that fails halfway
        # leaves nothing behind in the batch, and the batch's other work commits.
        marks: dict[str, int] = await self._submit(
            _Pending(step=lambda conn: prune_events(conn, before_ts))
        )
        return marks

    async def prune_keys(self, before_ts: float) -> int:
        removed: int = await self._submit(_Pending(step=lambda conn: prune_keys(conn, before_ts)))
        return removed

    async def write_step(self, step: Step) -> Any:
        """`step(connection)` inside the next write batch, in a savepoint of its own (for the
        seams that share this store's file, e.g. services/revocations.py)."""
        return await self._submit(_Pending(step=step))

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """`fn(connection)` on the reader connection's thread (committed data only)."""
        return await run_on_thread(self._conn(read=True), fn)

    def read_connection(self) -> aiosqlite.Connection:
        """The connection queries use (SERVICE_UNAVAILABLE when the store is not open)."""
        return self._conn(read=True)

    async def _submit(self, pending: _Pending) -> Any:
        if self._writer is None:
            raise RpcError(ErrorCode.SERVICE_UNAVAILABLE, "Storage is not open")
        self._queue.put_nowait(pending)
        return await pending.future

    async def _run_batch(self, batch: list[_Pending]) -> None:
        db = self._conn()
        for attempt in range(CONFLICT_RETRIES + 1):
            try:
                staged, stepped, committed = await self._attempt(db, batch)
            except VersionConflict as exc:
                if attempt == CONFLICT_RETRIES:
                    self._roll_back(batch, exc)
                    return
                self._forget(batch)  # another writer moved on: run the batch again, fresh
                self.reruns += 1
                continue
            except Exception as exc:
                self._roll_back(batch, exc)
                return
            for pending, (value, error) in zip(stepped, committed.outcomes, strict=True):
                pending.value, pending.error = value, error
            self._publish(batch, staged)
            return

    async def _attempt(
        self, db: aiosqlite.Connection, batch: list[_Pending]
    ) -> tuple[list[_Staged], list[_Pending], Committed]:
        self._batch_start = self._next_seq
        await self._stage(batch)
        staged = [s for p in batch if p.error is None for s in p.changes]
        stepped = [p for p in batch if p.step is not None and not p.future.cancelled()]
        steps = [p.step for p in stepped if p.step is not None]
        committed = await timed(self._commit(db, staged, steps), self.on_commit_seconds)
        return staged, stepped, committed

    def _publish(self, batch: list[_Pending], staged: list[_Staged]) -> None:
        """After the commit: subscribers hear of the batch's events, in order, and only then
        do its callers resume."""
        self.commits += 1
        for record in self._staged.values():
            self._cache.remember(record)
        self._staged.clear()
        self._staged_keys.clear()
        if staged:
            try:
                self.on_commit([s.event for s in staged])
            except Exception:  # committed all the same: the callers must hear so
                log.exception("publishing committed events failed")
        for pending in batch:
            if pending.future.done():
                continue
            if pending.error is not None:
                pending.future.set_exception(pending.error)
            else:
                pending.future.set_result(pending.value)

    async def _stage(self, batch: list[_Pending]) -> None:
        """Each operation in turn, in the loop. One that fails has its staged changes
        dropped; positions it took stay unused (event ids need to increase, not be dense)."""
        for pending in batch:
            if pending.future.cancelled():
                continue
            try:
                pending.value = await pending.operation(_BatchTx(self, pending))
            except Exception as exc:
                pending.changes.clear()
                pending.error = exc
            else:
                for staged in pending.changes:
                    record = staged.change.record
                    self._staged[record.alert.id] = record
                    if staged.change.idempotency_key is not None:
                        key = (record.alert.hospital_id, staged.change.idempotency_key)
                        self._staged_keys[key] = record.alert.id

    async def _commit(
        self, db: aiosqlite.Connection, staged: list[_Staged], steps: list[Step]
    ) -> Committed:
        """The batch's one round trip to the database thread. Should another writer on the
        same file have used the positions its events were numbered from, they are numbered
        again after that writer's and sent once more."""
        for _ in range(RENUMBER_ATTEMPTS):
            write = BatchWrite(self._batch_start, steps=steps)
            for item in staged:
                write.add(item.change, item.event)
            result = await run_on_thread(db, functools.partial(write_batch, batch=write))
            if isinstance(result, Committed):
                # Any later positions another writer used are skipped by the next batch.
                self._next_seq = max(self._next_seq, result.newest_seq + 1)
                return result
            self._batch_start = result.next_seq
            self._next_seq = result.next_seq + len(staged)
            for offset, item in enumerate(staged):
                item.event = _event(item.change, result.next_seq + offset, item.make_event)
        raise RpcError(
            ErrorCode.CONFLICT, "Another writer kept the database busy at the same time; retry"
        )

    def _forget(self, batch: list[_Pending]) -> None:
        """Undo the batch's staging: its positions, its records, and what it read of the
        alerts it touched (which may be stale: another writer)."""
        self._next_seq = self._batch_start
        self._staged.clear()
        self._staged_keys.clear()
        for pending in batch:
            for staged in pending.changes:
                self._cache.forget(staged.change.record.alert.id)
            pending.changes.clear()
            pending.value = pending.error = None

    def _roll_back(self, batch: list[_Pending], exc: Exception) -> None:
        """The batch's transaction was rolled back (or never began): nothing of it is
        published and every caller hears why."""
        self._forget(batch)
        if not isinstance(exc, RpcError):
            log.error("a write batch failed and was rolled back", exc_info=exc)
        for pending in batch:
            if not pending.future.done():
                pending.future.set_exception(exc)

    # --- reads ----------------------------------------------------------------------------

    async def get(self, alert_id: str) -> AlertRecord | None:
        cached = self._cache.get(alert_id)
        if cached is not None:
            return cached
        async with self._conn(read=True).execute(SELECT_ALERT, (alert_id,)) as cur:
            row = await cur.fetchone()
        return self._loaded(row)

    async def _load_for_write(self, alert_id: str) -> AlertRecord | None:
        """For an operation being staged: the writer's connection, in one hop to its thread
        (the batch waits for it), not the three of a cursor."""
        cached = self._cache.get(alert_id)
        if cached is not None:
            return cached
        row = await run_on_thread(self._conn(), functools.partial(_select_alert, alert_id=alert_id))
        return self._loaded(row)

    def _loaded(self, row: Any) -> AlertRecord | None:
        if row is None:
            return None
        record = _record(row)
        self._cache.remember(record)
        return record
