"""The notification sweep's seam (services/notification_sweep.py says why it exists): a durable
cursor over the alert event log, in the alert store's database, with one implementation per
store sharing that store's connections. Contract tests run on both
(tests/services/test_notification_sweep.py).

The two stores number events differently, so each keeps the cursor its log needs:
- SQLite numbers every event of the file in one sequence, in commit order (one writer), so
  one cursor (`'*'`) covers every hospital;
- PostgreSQL numbers events per hospital (`event_counters`, moved under the row's lock in the
  committing transaction), so there is one cursor per hospital, and the hospitals with
  something new are those whose counter is past their cursor (one small join).
A cursor only moves forward (an upsert keeping the greater value), so two nodes moving it at
once, or a slow one moving it late, never send it back over events already handled.

The migration that creates the cursors starts them at the log's current end: a database
upgraded to this version does not notify anyone of its past. A hospital with no cursor row
(first events after the upgrade, on PostgreSQL) starts from its first event.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from services.postgres_pool import repeatable
from services.sqlite_batch import run_on_thread
from services.store import StoredEvent
from services.store_postgres import PostgresAlertStore
from services.store_sqlite import SqliteAlertStore

# The event types a notification rule reads; the others are skipped in the query itself.
RULE_EVENTS = ("alert.updated", "alert.escalated")
EVERY_HOSPITAL = "*"  # the SQLite cursor's key


@dataclass(frozen=True, slots=True)
class Backlog:
    """Rule events after cursor `key`, in commit order; once they are handled the cursor may
    move to `through` (past the events of other types in between too)."""

    key: str
    events: list[StoredEvent]
    through: int


class NotificationCursorStore(Protocol):
    async def backlog(self, limit: int) -> list[Backlog]:
        """What is after the cursors: at most `limit` events per cursor."""

    async def advance(self, key: str, seq: int) -> None:
        """Move cursor `key` to `seq`, unless it is already there or further."""

    async def previous(self, hospital_id: str, alert_id: str, seq: int) -> bytes | None:
        """The payload of the alert's event just before position `seq` (None when there is
        none, or it was pruned)."""


def _through(events: Sequence[StoredEvent], limit: int, top: int) -> int:
    """A full page moves the cursor to its last event only (more may match after it)."""
    return events[-1].seq if len(events) >= limit else top


class SqliteNotificationCursors:
    def __init__(self, store: SqliteAlertStore) -> None:
        self._store = store

    async def _rows(self, query: str, args: Sequence[Any]) -> list[Any]:
        async with self._store._conn(read=True).execute(query, args) as cur:
            return list(await cur.fetchall())

    async def backlog(self, limit: int) -> list[Backlog]:
        cursor = await self._rows(
            "SELECT seq FROM notification_cursors WHERE name = ?", (EVERY_HOSPITAL,)
        )
        after = int(cursor[0][0]) if cursor else 0
        top_rows = await self._rows("SELECT MAX(seq) FROM events", ())
        top = int(top_rows[0][0] or 0)
        if top <= after:
            return []
        rows = await self._rows(
            "SELECT seq, hospital_id, alert_id, payload FROM events WHERE seq > ? AND seq <= ? "
            "AND type IN (?, ?) ORDER BY seq LIMIT ?",
            (after, top, *RULE_EVENTS, limit),
        )
        events = [StoredEvent(int(r[0]), r[1], r[2], bytes(r[3])) for r in rows]
        return [Backlog(EVERY_HOSPITAL, events, _through(events, limit, top))]

    async def advance(self, key: str, seq: int) -> None:
        def upsert(conn: sqlite3.Connection) -> None:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute(
                    "INSERT INTO notification_cursors (name, seq) VALUES (?, ?) "
                    "ON CONFLICT (name) DO UPDATE SET seq = MAX(seq, excluded.seq)",
                    (key, seq),
                )
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

        # On the writer connection's thread, between the alert store's batches.
        await run_on_thread(self._store._conn(), upsert)

    async def previous(self, hospital_id: str, alert_id: str, seq: int) -> bytes | None:
        rows = await self._rows(
            "SELECT payload FROM events WHERE alert_id = ? AND hospital_id = ? AND seq < ? "
            "ORDER BY seq DESC LIMIT 1",
            (alert_id, hospital_id, seq),
        )
        return bytes(rows[0][0]) if rows else None


class PostgresNotificationCursors:
    def __init__(self, store: PostgresAlertStore) -> None:
        self._store = store

    async def _fetch(self, query: str, *args: Any) -> list[Any]:
        return await repeatable(self._store._pool, lambda conn: conn.fetch(query, *args))

    async def backlog(self, limit: int) -> list[Backlog]:
        behind = await self._fetch(
            "SELECT c.hospital_id, c.last_seq, COALESCE(n.seq, 0) FROM event_counters c "
            "LEFT JOIN notification_cursors n ON n.hospital_id = c.hospital_id "
            "WHERE c.last_seq > COALESCE(n.seq, 0) ORDER BY c.hospital_id"
        )
        found = []
        for hospital_id, top, after in behind:
            rows = await self._fetch(
                "SELECT seq, hospital_id, alert_id, payload FROM events WHERE hospital_id = $1 "
                "AND seq > $2 AND seq <= $3 AND type = ANY($4::text[]) ORDER BY seq LIMIT $5",
                hospital_id,
                int(after),
                int(top),
                list(RULE_EVENTS),
                limit,
            )
            events = [StoredEvent(int(r[0]), r[1], r[2], bytes(r[3])) for r in rows]
            found.append(Backlog(hospital_id, events, _through(events, limit, int(top))))
        return found

    async def advance(self, key: str, seq: int) -> None:
        await repeatable(
            self._store._pool,
            lambda conn: conn.execute(
                "INSERT INTO notification_cursors (hospital_id, seq) VALUES ($1, $2) "
                "ON CONFLICT (hospital_id) DO UPDATE "
                "SET seq = GREATEST(notification_cursors.seq, excluded.seq)",
                key,
                seq,
            ),
        )

    async def previous(self, hospital_id: str, alert_id: str, seq: int) -> bytes | None:
        rows = await self._fetch(
            "SELECT payload FROM events WHERE alert_id = $1 AND hospital_id = $2 AND seq < $3 "
            "ORDER BY seq DESC LIMIT 1",
            alert_id,
            hospital_id,
            seq,
        )
        return bytes(rows[0][0]) if rows else None


def make_cursor_store(store: object) -> NotificationCursorStore:
    if isinstance(store, PostgresAlertStore):
        return PostgresNotificationCursors(store)
    if isinstance(store, SqliteAlertStore):
        return SqliteNotificationCursors(store)
    raise TypeError(f"no notification cursor store for {type(store).__name__}")
