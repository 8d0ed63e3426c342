"""The embedded alert store: SQLite through aiosqlite, WAL, migrations at start-up.

Writes are group-committed: operations queue up, and one writer task runs every waiting
operation in a single transaction, so a burst of mutations costs one commit, not one each.
Staged rows are written with `executemany` at the end of the batch. Each alert row is upserted
only if its stored version is the one the change started from, so a second writer on the same
file can never cause a lost update: the batch fails and nothing of it is published.

A reader connection serves queries (WAL lets it read while the writer commits). With an
in-memory database both roles share one connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from rpc.errors import ErrorCode, RpcError
from schemas.alerts import Alert
from services.private_files import prepare_sqlite_files
from services.sqlite_reads import SqliteReads
from services.sqlite_retention import prune_events
from services.sqlite_schema import migrate, use_wal
from services.store import AlertRecord, StagedChange, StoredEvent, Transaction

log = logging.getLogger("alertwire.store")

T = TypeVar("T")
MAX_BATCH = 256
CACHE_SIZE = 20_000

UPSERT_ALERT = """
INSERT INTO alerts (id, hospital_id, status, priority, created_ts, responded_ts,
                    escalation_due, version, body)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT(id) DO UPDATE SET
    status = excluded.status, priority = excluded.priority,
    responded_ts = excluded.responded_ts, escalation_due = excluded.escalation_due,
    version = excluded.version, body = excluded.body
WHERE alerts.version = excluded.version - 1
"""
INSERT_EVENT = """
INSERT INTO events (seq, hospital_id, alert_id, type, actor_id, occurred_ts, detail, payload)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
"""
SELECT_ALERT = "SELECT body, created_ts, responded_ts, escalation_due FROM alerts WHERE id = ?"


def _record(row: Any) -> AlertRecord:
    return AlertRecord(Alert.model_validate_json(row[0]), row[1], row[2], row[3])


@dataclass
class _Pending:
    operation: Callable[[Transaction], Awaitable[Any]]
    future: asyncio.Future[Any]
    changes: list[tuple[StagedChange, StoredEvent]] = field(default_factory=list)


def _shut_out(pending: _Pending) -> None:
    if not pending.future.done():
        pending.future.set_exception(
            RpcError(ErrorCode.SERVICE_UNAVAILABLE, "The server is shutting down")
        )


class _BatchTx:
    """One operation's view of the batch: earlier operations' staged records are visible."""

    def __init__(self, store: SqliteAlertStore, pending: _Pending) -> None:
        self._store = store
        self._pending = pending

    async def get(self, alert_id: str) -> AlertRecord | None:
        for change, _ in reversed(self._pending.changes):
            if change.record.alert.id == alert_id:
                return change.record
        staged = self._store._staged.get(alert_id)
        if staged is not None:
            return staged
        return await self._store._load(alert_id, self._store._db)

    def stage(self, change: StagedChange, make_event: Callable[[int], bytes]) -> StoredEvent:
        seq = self._store._next_seq
        self._store._next_seq += 1
        alert = change.record.alert
        event = StoredEvent(seq, alert.hospital_id, alert.id, make_event(seq))
        self._pending.changes.append((change, event))
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
        self._staged: dict[str, AlertRecord] = {}
        self._cache: OrderedDict[str, AlertRecord] = OrderedDict()
        self.commits = 0  # write transactions committed (each carries a whole batch)

    # --- lifecycle ------------------------------------------------------------------------

    async def open(self) -> None:
        if self.path != ":memory:":
            # 0600 before SQLite first opens it, so its -wal and -shm are born 0600 too.
            prepare_sqlite_files(Path(self.path))
        try:
            self._db = await self._connect()
            await migrate(self._db)
            self._reader = self._db if self.path == ":memory:" else await self._connect()
            self._next_seq = await self._max_seq(self._db) + 1
        except BaseException:
            await self.close()  # a refused or broken file leaves no connection (thread) behind
            raise
        self._writer = asyncio.create_task(self._write_forever(), name="alert-store-writer")

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

    @staticmethod
    async def _max_seq(db: aiosqlite.Connection) -> int:
        """The highest position ever used, pruned ones included: ids are never reused."""
        rows = list(
            await db.execute_fetchall(  # one round trip to the database thread, not three
                "SELECT MAX(COALESCE((SELECT MAX(seq) FROM events), 0), "
                "COALESCE((SELECT MAX(pruned_through) FROM prune_marks), 0))"
            )
        )
        return int(rows[0][0] if rows else 0)

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
            self._writer = None
        while not self._queue.empty():
            _shut_out(self._queue.get_nowait())
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
        if self._writer is None:
            raise RpcError(ErrorCode.SERVICE_UNAVAILABLE, "Storage is not open")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Pending(operation, future))
        return await future

    async def _write_forever(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < MAX_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await self._run_batch(batch)
            except asyncio.CancelledError:
                for pending in batch:  # callers get an error to report, not a cancellation
                    _shut_out(pending)
                raise

    async def _run_batch(self, batch: list[_Pending]) -> None:
        db = self._conn()
        first_seq = self._next_seq
        results: list[tuple[_Pending, Any, BaseException | None]] = []
        try:
            await db.execute("BEGIN IMMEDIATE")
            # Another writer on the same file may have appended since: continue after it.
            self._next_seq = first_seq = max(first_seq, await self._max_seq(db) + 1)
            for pending in batch:
                if pending.future.cancelled():
                    continue
                try:
                    value = await pending.operation(_BatchTx(self, pending))
                except Exception as exc:
                    self._unstage(pending)
                    results.append((pending, None, exc))
                else:
                    for change, _ in pending.changes:
                        self._staged[change.record.alert.id] = change.record
                    results.append((pending, value, None))
            changes = [c for p, _, err in results if err is None for c in p.changes]
            if changes:
                await self._write(db, changes)
            await db.execute("COMMIT")
        except Exception as exc:
            with contextlib.suppress(Exception):
                await db.execute("ROLLBACK")
            self._next_seq = first_seq
            self._staged.clear()
            for pending in batch:  # what it read may be stale (another writer): read it again
                for change, _ in pending.changes:
                    self._cache.pop(change.record.alert.id, None)
            if not isinstance(exc, RpcError):
                log.error("a write batch failed and was rolled back", exc_info=exc)
            for pending in batch:
                if not pending.future.done():
                    pending.future.set_exception(exc)
            return
        self.commits += 1
        for record in self._staged.values():
            self._remember(record)
        self._staged.clear()
        if changes:
            try:
                self.on_commit([event for _, event in changes])
            except Exception:  # committed all the same: the callers must hear so
                log.exception("publishing committed events failed")
        for pending, value, error in results:
            if pending.future.done():
                continue
            if error is not None:
                pending.future.set_exception(error)
            else:
                pending.future.set_result(value)

    @staticmethod
    def _unstage(pending: _Pending) -> None:
        """A failed operation's staged changes are dropped. Positions it took stay unused:
        event ids only need to increase, not to be dense."""
        pending.changes.clear()

    async def _write(
        self, db: aiosqlite.Connection, changes: list[tuple[StagedChange, StoredEvent]]
    ) -> None:
        alert_rows = []
        event_rows = []
        for change, event in changes:
            record = change.record
            alert = record.alert
            alert_rows.append(
                (
                    alert.id,
                    alert.hospital_id,
                    alert.status,
                    alert.priority,
                    record.created_ts,
                    record.responded_ts,
                    record.escalation_due,
                    alert.version,
                    alert.model_dump_json(by_alias=True),
                )
            )
            event_rows.append(
                (
                    event.seq,
                    event.hospital_id,
                    event.alert_id,
                    change.event_type,
                    change.actor_id,
                    change.occurred_ts,
                    change.detail,
                    event.payload,
                )
            )
        cursor = await db.executemany(UPSERT_ALERT, alert_rows)
        if cursor.rowcount != len(alert_rows):
            raise RpcError(
                ErrorCode.CONFLICT,
                "The alert was changed by another writer at the same time; retry",
            )
        await db.executemany(INSERT_EVENT, event_rows)

    # --- reads ----------------------------------------------------------------------------

    def _remember(self, record: AlertRecord) -> None:
        cached = self._cache.get(record.alert.id)
        if cached is not None and cached.alert.version > record.alert.version:
            return  # a read that began before a commit finished after it: keep the newer
        self._cache[record.alert.id] = record
        self._cache.move_to_end(record.alert.id)
        while len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)

    async def _load(self, alert_id: str, db: aiosqlite.Connection | None) -> AlertRecord | None:
        cached = self._cache.get(alert_id)
        if cached is not None:
            return cached
        if db is None:
            raise RpcError(ErrorCode.SERVICE_UNAVAILABLE, "Storage is not open")
        async with db.execute(SELECT_ALERT, (alert_id,)) as cur:
            row = await cur.fetchone()
        if row is None:
            return None
        record = _record(row)
        self._remember(record)
        return record

    async def get(self, alert_id: str) -> AlertRecord | None:
        return await self._load(alert_id, self._reader)

    async def prune(self, before_ts: float) -> dict[str, int]:
        async def operation(tx: Transaction) -> dict[str, int]:
            # A savepoint: a prune that fails halfway leaves nothing behind in the batch.
            db = self._conn()
            await db.execute("SAVEPOINT prune")
            try:
                marks = await prune_events(db, before_ts)
            except BaseException:
                await db.execute("ROLLBACK TO prune")
                await db.execute("RELEASE prune")
                raise
            await db.execute("RELEASE prune")
            return marks

        return await self.transact(operation)
