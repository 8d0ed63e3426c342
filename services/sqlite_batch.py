"""The database side of one SQLite write batch: a plain function that runs on the writer
connection's own thread and does the whole transaction there, so that a batch costs one hop
to that thread and one reply back through the event loop (each reply can wait
behind a long fan-out on the loop, and five of them used to).

Split from store_sqlite.py, which stages the batch in the loop and hands it over here.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import aiosqlite

from services.store import IDEMPOTENCY_TTL_S, StagedChange, StoredEvent, VersionConflict

R = TypeVar("R")
# Runs inside the batch's transaction on the database thread, in a savepoint of its own.
Step = Callable[[sqlite3.Connection], Any]
Outcome = tuple[Any, Exception | None]  # a step's value, or what it raised

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
# A key claimed before is taken over only once it has expired (no longer found by a lookup);
# otherwise nothing is written, the row count says so and the batch runs again.
UPSERT_KEY = """
INSERT INTO idempotency_keys (hospital_id, idempotency_key, alert_id, created_ts)
VALUES (?, ?, ?, ?)
ON CONFLICT(hospital_id, idempotency_key) DO UPDATE SET
    alert_id = excluded.alert_id, created_ts = excluded.created_ts
WHERE idempotency_keys.created_ts < ?
"""
SELECT_KEY = (
    "SELECT alert_id FROM idempotency_keys "
    "WHERE hospital_id = ? AND idempotency_key = ? AND created_ts >= ?"
)
INSERT_EVENT = """
INSERT INTO events (seq, hospital_id, alert_id, type, actor_id, occurred_ts, detail, payload)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
"""
# The highest position ever used, pruned ones included: ids are never reused.
MAX_SEQ = (
    "SELECT MAX(COALESCE((SELECT MAX(seq) FROM events), 0), "
    "COALESCE((SELECT MAX(pruned_through) FROM prune_marks), 0))"
)


async def run_on_thread(db: aiosqlite.Connection, fn: Callable[[sqlite3.Connection], R]) -> R:
    """`fn(connection)` on `db`'s own thread, with its sqlite3 connection: one hop there and
    one reply back, whatever `fn` does. aiosqlite (0.22) has no public call for this, so this
    goes through `Connection._execute`, the queue every one of its own calls goes through
    (SQLAlchemy's aiosqlite dialect relies on the same queue). The sqlite3 connection refuses
    use from any other thread, so should that internal ever change, this fails loudly
    (tests/services/test_sqlite_batch.py checks it) rather than running `fn` elsewhere."""

    def call() -> R:
        return fn(db._conn)

    return cast(R, await db._execute(call))  # type: ignore[no-untyped-call]


@dataclass(slots=True)
class BatchWrite:
    """What one batch asks of the database, its rows built in the loop. `first_seq` is the
    position its events were numbered from: should another writer on the file have used it
    since, nothing is written and `write_batch` says where to number from instead."""

    first_seq: int
    alert_rows: list[tuple[Any, ...]] = field(default_factory=list)
    event_rows: list[tuple[Any, ...]] = field(default_factory=list)
    key_rows: list[tuple[Any, ...]] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)

    def add(self, change: StagedChange, event: StoredEvent) -> None:
        record = change.record
        alert = record.alert
        self.alert_rows.append(
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
        self.event_rows.append(
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
        if change.idempotency_key is not None:
            now = change.occurred_ts
            key = change.idempotency_key
            expired = now - IDEMPOTENCY_TTL_S  # an older claim may be taken over
            self.key_rows.append((alert.hospital_id, key, alert.id, now, expired))


def key_owner(conn: sqlite3.Connection, hospital_id: str, key: str, since: float) -> str | None:
    row = conn.execute(SELECT_KEY, (hospital_id, key, since)).fetchone()
    return None if row is None else str(row[0])


@dataclass(frozen=True, slots=True)
class Committed:
    newest_seq: int  # the highest position used before this batch
    outcomes: list[Outcome]  # one per step, in order


@dataclass(frozen=True, slots=True)
class Renumber:
    """Another writer on the same file used positions from the batch's `first_seq` on; the
    transaction was rolled back. The batch's events are to be numbered from `next_seq`."""

    next_seq: int


def newest_seq(conn: sqlite3.Connection) -> int:
    row = conn.execute(MAX_SEQ).fetchone()
    return int(row[0] if row else 0)


def write_batch(conn: sqlite3.Connection, batch: BatchWrite) -> Committed | Renumber:
    """On the database thread: BEGIN IMMEDIATE, the position check, the batch's steps, every
    alert upsert with its version check and every event, COMMIT; all or nothing, but for a
    step that raises, which is rolled back alone and reported in `outcomes`. A version check
    (or key claim) that fails raises VersionConflict; that and anything else raised roll back
    and propagate."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        newest = newest_seq(conn)
        if batch.event_rows and newest >= batch.first_seq:
            conn.execute("ROLLBACK")
            return Renumber(newest + 1)
        outcomes = [_run_step(conn, step) for step in batch.steps]
        if batch.event_rows:
            _write_rows(conn, batch)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):  # what went wrong is the error to report
                conn.execute("ROLLBACK")
        raise
    return Committed(newest, outcomes)


def _run_step(conn: sqlite3.Connection, step: Step) -> Outcome:
    """A step that fails leaves nothing behind in the batch, and fails alone."""
    conn.execute("SAVEPOINT step")
    try:
        value = step(conn)
    except Exception as exc:
        conn.execute("ROLLBACK TO step")
        conn.execute("RELEASE step")
        return None, exc
    conn.execute("RELEASE step")
    return value, None


def _write_rows(conn: sqlite3.Connection, batch: BatchWrite) -> None:
    # Each row is written only over the version its change started from: a second writer on
    # the same file can never cause a lost update, the whole batch fails instead (and runs
    # again on fresh reads).
    if conn.executemany(UPSERT_ALERT, batch.alert_rows).rowcount != len(batch.alert_rows):
        raise VersionConflict()
    if conn.executemany(UPSERT_KEY, batch.key_rows).rowcount != len(batch.key_rows):
        raise VersionConflict()
    conn.executemany(INSERT_EVENT, batch.event_rows)
