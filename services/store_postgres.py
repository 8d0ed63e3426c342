"""The PostgreSQL alert store (asyncpg), chosen by `DATABASE_URL=postgresql://...`; the same
seam, schema and behaviour as store_sqlite.py, for several nodes on one database.

Group commit, one round trip per batch. Operations queue up; one writer task runs every
waiting operation in the event loop (each reads alerts through the cache or a pooled
connection and stages changes), then commits the whole batch with ONE call of the server-side
function `alertwire_commit` (postgres_schema.py), whose arguments are column arrays. A single
statement is its own transaction, so BEGIN, the position and version checks, every insert and
COMMIT cost one round trip and one WAL flush however many operations the batch carries.
Rejected: `executemany` inside an explicit transaction (BEGIN, a read of the counters, one
pipelined executemany per table, COMMIT: four round trips or more per batch, each a window in
which the counter rows are locked) and one multi-statement text query (values spliced into
SQL, no prepared statement, no binary arrays).

Positions: a hospital's events are numbered 1, 2, 3, ... with no gap and no reuse, whichever
node writes them. A batch is numbered in the event loop from this node's last known position
of each hospital (loaded at open, advanced by its own commits). The function locks the
hospitals' counter rows, in one order, and compares: when another node has written since, it
writes nothing and returns the current positions, and the batch is numbered again (only the
event encodings are redone: the operations do not run twice) and sent again. Numbering is done
over the changes that remain, so an operation that fails within a batch leaves no hole either.

Optimistic concurrency, as on SQLite: a change applies only if the alert's stored version is
the one it started from. If not (another node changed an alert this node had cached), the
function raises and nothing of the batch is written or published; the store drops what the
batch read from its cache and runs every operation of the batch again on fresh reads, up to
CONFLICT_RETRIES times (services/store.py), so that an unrelated create in the same batch
succeeds and a change that still applies to the committed state is applied to it. The same
goes for an idempotency key another node claimed first: the run again finds it.

The cache is also kept fresh from the cluster's events (`heard`, services/alert_cache.py), so
that a read, or a domain CONFLICT decided on a cached state, is seldom based on an alert
another node has moved on. Limitation: until the event arrives (a few milliseconds), an
operation that stages nothing (a read, an acknowledgement refused as someone else's) can
still answer from the older copy; a change never can.

Commit, then publish: `on_commit` gets the batch's events in order before any caller resumes.
Durable: `synchronous_commit` is on for the store's connections (postgres_pool.py).

A connection lost during the commit call leaves its outcome unknown. The store then asks the
database whether the batch's last event is there with its payload: if so it committed; if not
it is sent once more on a fresh connection; if the database cannot be reached the callers get
SERVICE_UNAVAILABLE. Limitation: a batch whose commit completes on the server after that
question was answered is refused by the version check when sent again, and so runs again on
fresh reads: a create with an idempotency key then finds its key, but an operation that is not
idempotent (a create without a key, an escalation by hand) is applied a second time. A batch that
committed just as the database went away is in the log but not published by this node;
subscribers that resume by `lastEventId` read both from the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import asyncpg

from rpc.errors import ErrorCode, RpcError
from schemas.alerts import Alert
from services import faults
from services.alert_cache import AlertCache
from services.postgres_batch import Batch, Staged, columns, key_columns, number
from services.postgres_pool import LOST, create_pool, lost, not_open, once, repeatable
from services.postgres_reads import PostgresReads
from services.postgres_retention import prune_events
from services.postgres_schema import VERSION_CONFLICT, migrate
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

if TYPE_CHECKING:
    from services.postgres_pool import Connection

log = logging.getLogger("alertwire.store")

T = TypeVar("T")
# Each renumbering means another node committed to one of the batch's hospitals meanwhile;
# this many in a row means the stream is too busy to wait for.
MAX_RENUMBER = 50
CLOSE_TIMEOUT_S = 5.0
HEALTH_TIMEOUT_S = 2.0

COMMIT_CALL = (
    "SELECT counter_hospital, counter_seq FROM alertwire_commit($1, $2, $3, $4, $5, $6, $7, "
    "$8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25)"
)
SELECT_ALERT = "SELECT body, created_ts, responded_ts, escalation_due FROM alerts WHERE id = $1"
SELECT_KEY = (
    "SELECT alert_id FROM idempotency_keys "
    "WHERE hospital_id = $1 AND idempotency_key = $2 AND created_ts >= $3"
)
SELECT_PAYLOAD = "SELECT payload FROM events WHERE hospital_id = $1 AND seq = $2"


def _record(row: Any) -> AlertRecord:
    return AlertRecord(Alert.model_validate_json(row[0]), row[1], row[2], row[3])


@dataclass
class _Pending:
    operation: Callable[[Transaction], Awaitable[Any]]
    future: asyncio.Future[Any]
    changes: list[Staged] = field(default_factory=list)


class _BatchTx:
    """One operation's view of the batch: earlier operations' staged records are visible."""

    def __init__(self, store: PostgresAlertStore, batch: Batch, pending: _Pending) -> None:
        self._store = store
        self._batch = batch
        self._pending = pending

    async def get(self, alert_id: str) -> AlertRecord | None:
        for staged in reversed(self._pending.changes):
            if staged.change.record.alert.id == alert_id:
                return staged.change.record
        record = self._batch.records.get(alert_id)
        if record is not None:
            return record
        self._batch.read.add(alert_id)
        return await self._store._load(alert_id)

    async def created_by_key(self, hospital_id: str, key: str, since: float) -> str | None:
        for staged in self._pending.changes:
            change = staged.change
            if change.idempotency_key == key and change.record.alert.hospital_id == hospital_id:
                return change.record.alert.id
        claimed = self._batch.keys.get((hospital_id, key))
        if claimed is not None:
            return claimed
        row = await self._store._fetchrow(SELECT_KEY, hospital_id, key, since)
        return None if row is None else str(row[0])

    def stage(self, change: StagedChange, make_event: Callable[[int], bytes]) -> StoredEvent:
        """The event's position is provisional: should another node write to the hospital
        before this batch commits, the commit renumbers it (`on_commit` has the final one)."""
        alert = change.record.alert
        seq = self._batch.take(alert.hospital_id)
        event = StoredEvent(seq, alert.hospital_id, alert.id, make_event(seq))
        self._pending.changes.append(Staged(change, make_event, event))
        return event


class PostgresAlertStore(PostgresReads):
    def __init__(self, url: str) -> None:
        self.url = url
        self.on_commit: Callable[[Sequence[StoredEvent]], None] = lambda events: None
        self._pool: asyncpg.Pool | None = None
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None
        self._last_seq: dict[str, int] = {}  # each hospital's last position, as last seen
        self._cache = AlertCache()
        self.commits = 0  # write batches completed (each carries many operations)
        # Told how long each batch took to commit (the commit-duration histogram), if set.
        self.on_commit_seconds: Callable[[float], None] | None = None
        self.reruns = 0  # batches run again on fresh reads after a failed version check

    # --- lifecycle ------------------------------------------------------------------------

    async def open(self) -> None:
        try:
            self._pool = await create_pool(self.url)
            async with self._pool.acquire() as conn:
                await migrate(conn)
                rows = await conn.fetch("SELECT hospital_id, last_seq FROM event_counters")
        except BaseException:
            await self.close()  # a refused database leaves no pool behind
            raise
        self._last_seq = {str(r[0]): int(r[1]) for r in rows}
        self._writer = asyncio.create_task(
            write_in_batches(self._queue, self._run_batch), name="alert-store-writer"
        )

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
            self._writer = None
        while not self._queue.empty():
            shut_out(self._queue.get_nowait())
        pool, self._pool = self._pool, None
        if pool is not None:
            try:
                await asyncio.wait_for(pool.close(), CLOSE_TIMEOUT_S)
            except TimeoutError:  # a read still holds a connection: do not wait for it
                pool.terminate()

    @property
    def pool(self) -> asyncpg.Pool | None:
        """The connection pool (None until open), shared by stores on the same database such
        as the vitals store."""
        return self._pool

    async def healthy(self) -> bool:
        try:
            probe = repeatable(self._pool, lambda conn: conn.fetchval("SELECT 1"))
            return bool(await asyncio.wait_for(probe, HEALTH_TIMEOUT_S) == 1)
        except Exception:
            return False

    # --- writes ---------------------------------------------------------------------------

    @property
    def waiting_writes(self) -> int:
        """Operations queued for the next write batch (not yet taken by the writer)."""
        return self._queue.qsize()

    async def transact(self, operation: Callable[[Transaction], Awaitable[T]]) -> T:
        if self._writer is None:
            raise not_open()
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Pending(operation, future))
        return await future

    async def _run_batch(self, batch: list[_Pending]) -> None:
        for attempt in range(CONFLICT_RETRIES + 1):
            state, results = await self._stage_batch(batch)
            staged = [s for p, _, err in results if err is None for s in p.changes]
            try:
                events = await timed(self._commit(staged), self.on_commit_seconds) if staged else []
            except VersionConflict as exc:
                self._forget(state)  # another node moved on: read again, run again
                if attempt < CONFLICT_RETRIES:
                    self.reruns += 1
                    continue
                self._fail(batch, exc)
                return
            except Exception as exc:
                self._forget(state)  # what the batch read may be stale: read it again
                self._fail(batch, exc)
                return
            self._finish(state, results, events)
            return

    async def _stage_batch(
        self, batch: list[_Pending]
    ) -> tuple[Batch, list[tuple[_Pending, Any, BaseException | None]]]:
        """Each operation in turn, in the loop, from this node's last known positions."""
        state = Batch(self._last_seq)
        results: list[tuple[_Pending, Any, BaseException | None]] = []
        for pending in batch:
            pending.changes.clear()  # a run again starts from nothing
            if pending.future.cancelled():
                continue
            try:
                value = await pending.operation(_BatchTx(self, state, pending))
            except Exception as exc:
                state.drop(pending.changes)
                results.append((pending, None, exc))
            else:
                state.keep(pending.changes)
                results.append((pending, value, None))
        return state, results

    def _finish(
        self,
        state: Batch,
        results: list[tuple[_Pending, Any, BaseException | None]],
        events: list[StoredEvent],
    ) -> None:
        """After the commit: remember, publish, then let the callers resume."""
        self.commits += 1
        faults.after_commit(events)
        for record in state.records.values():
            self._cache.remember(record)
        if events:
            try:
                self.on_commit(events)
            except Exception:  # committed all the same: the callers must hear so
                log.exception("publishing committed events failed")
        for pending, value, error in results:
            if pending.future.done():
                continue
            if error is not None:
                pending.future.set_exception(error)
            else:
                pending.future.set_result(value)

    def _forget(self, state: Batch) -> None:
        for alert_id in state.read | state.records.keys():
            self._cache.forget(alert_id)

    def _fail(self, batch: list[_Pending], exc: Exception) -> None:
        if not isinstance(exc, RpcError):
            log.error("a write batch failed and was rolled back", exc_info=exc)
        for pending in batch:
            if not pending.future.done():
                pending.future.set_exception(exc)

    async def _commit(self, staged: list[Staged]) -> list[StoredEvent]:
        """Commit the batch in one call; renumber and send again while other nodes win."""
        alert_columns = columns(staged)
        claims = key_columns(staged)
        for _ in range(MAX_RENUMBER):
            events, spans, event_columns = number(staged, self._last_seq)
            args = [*spans, *alert_columns, *event_columns, *claims]
            current = await self._send(args, events[-1])
            if current is None:
                self._last_seq.update(zip(spans[0], spans[2], strict=True))
                return events
            self._last_seq.update(current)
        raise RpcError(ErrorCode.CONFLICT, "The alert stream is busy; retry")

    async def _send(self, args: list[Any], last: StoredEvent) -> dict[str, int] | None:
        """None once committed; the current positions when another node wrote first."""
        try:
            rows = await self._call(args)
        except LOST as exc:
            log.warning("the connection was lost during a commit (%s)", type(exc).__name__)
            if await self._landed(last):
                return None
            try:
                rows = await self._call(args)
            except LOST as again:
                raise lost(again) from again
        return {str(r[0]): int(r[1]) for r in rows} or None

    async def _call(self, args: list[Any]) -> list[Any]:
        try:
            return await once(self._pool, lambda conn: conn.fetch(COMMIT_CALL, *args))
        except asyncpg.PostgresError as exc:
            if exc.sqlstate == VERSION_CONFLICT:
                raise VersionConflict() from exc
            raise

    async def _landed(self, event: StoredEvent) -> bool:
        """Whether a commit whose answer was lost took place: its last event is unique (its
        payload names the alert and the time)."""
        payload = await repeatable(
            self._pool, lambda conn: conn.fetchval(SELECT_PAYLOAD, event.hospital_id, event.seq)
        )
        return payload is not None and bytes(payload) == event.payload

    # --- reads ----------------------------------------------------------------------------

    async def _load(self, alert_id: str) -> AlertRecord | None:
        cached = self._cache.get(alert_id)
        if cached is not None:
            return cached
        row = await self._fetchrow(SELECT_ALERT, alert_id)
        if row is None:
            return None
        record = _record(row)
        self._cache.remember(record)
        return record

    async def get(self, alert_id: str) -> AlertRecord | None:
        return await self._load(alert_id)

    async def run(self, call: Callable[[Connection], Awaitable[T]]) -> T:
        """`call(connection)` on a pooled connection, once more on a fresh one if the first
        was dead: for statements safe to repeat (the seams sharing this pool, e.g.
        services/revocations.py)."""
        return await repeatable(self._pool, call)

    def heard(self, alert_id: str, version: int) -> None:
        """An alert's committed version, from an event of any node (services/alert_cache.py)."""
        self._cache.heard(alert_id, version)

    async def prune_keys(self, before_ts: float) -> int:
        status = await repeatable(
            self._pool,
            lambda conn: conn.execute(
                "DELETE FROM idempotency_keys WHERE created_ts < $1", before_ts
            ),
        )
        return int(status.split()[-1])  # "DELETE <count>"

    async def prune(self, before_ts: float) -> dict[str, int]:
        async def in_transaction(conn: Connection) -> dict[str, int]:
            # A prune that fails halfway leaves nothing behind, so it is safe to repeat.
            async with conn.transaction():
                return await prune_events(conn, before_ts)

        return await repeatable(self._pool, in_transaction)
