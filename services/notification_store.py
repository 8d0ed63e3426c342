"""The notifications seam: each user's durable inbox and the staff directory, in the alert
store's database (SQLite file or PostgreSQL), behind one protocol with one implementation per
store sharing that store's connections. Contract tests run on both
(tests/services/test_notification_store.py).

Ids increase in commit order, so that a subscriber that saw id N and asks for what came after
misses nothing: SQLite has one writer; PostgreSQL inserts take a transaction-level advisory
lock (notifications are rare next to alert events, so the serialisation costs nothing that
matters). A domain rule's notification carries a `dedupe_key`: the unique (recipient, key)
index makes a second attempt (another node, a retry) write nothing.

The staff directory records, per hospital, the users seen (sub, role, name) when they call:
notifying "the charge nurses of the hospital" must reach those who are not connected now, and
the tokens are the only source of who works where. Someone seen once stays listed (they read
their inbox when they next sign in); a new token with other hospitals replaces their rows.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from services.sqlite_batch import run_on_thread
from services.store_sqlite import SqliteAlertStore


@dataclass(frozen=True, slots=True)
class NewNotification:
    recipient: str
    kind: str
    title: str
    message: str | None
    hospital_id: str | None
    alert_id: str | None
    severity: str | None
    created_ts: float
    dedupe_key: str | None = None


@dataclass(frozen=True, slots=True)
class NotificationRecord:
    id: int
    recipient: str
    kind: str
    title: str
    message: str | None
    hospital_id: str | None
    alert_id: str | None
    severity: str | None
    created_ts: float
    read_ts: float | None


SELECT = (
    "SELECT id, recipient, kind, title, message, hospital_id, alert_id, severity, created_ts, "
    "read_ts FROM notifications"
)


def record(row: Sequence[Any]) -> NotificationRecord:
    return NotificationRecord(
        int(row[0]),
        str(row[1]),
        str(row[2]),
        str(row[3]),
        row[4],
        row[5],
        row[6],
        row[7],
        float(row[8]),
        None if row[9] is None else float(row[9]),
    )


class NotificationStore(Protocol):
    async def add(self, items: Sequence[NewNotification]) -> list[NotificationRecord]:
        """Insert in order; returns those written (a repeated dedupe key writes nothing)."""

    async def page(
        self, recipient: str, unread_only: bool, before_id: int | None, limit: int
    ) -> list[NotificationRecord]:
        """Newest first, ids below `before_id` when given."""

    async def after(self, recipient: str, after_id: int, limit: int) -> list[NotificationRecord]:
        """Oldest first, ids above `after_id`."""

    async def newest_id(self, recipient: str) -> int: ...

    async def holding(self, dedupe_key: str, recipients: Sequence[str]) -> set[str]:
        """Those of `recipients` who already have the notification of `dedupe_key` (a read:
        the sweep asks before writing, so that a notification the fast path wrote costs no
        write transaction)."""

    async def unread(self, recipient: str) -> int: ...

    async def mark_read(self, recipient: str, ids: Sequence[int] | None, now: float) -> list[int]:
        """Mark the recipient's unread notifications among `ids` (all when None) read; returns
        the ids this call changed (so two devices marking at once never count one twice)."""

    async def remember(
        self, sub: str, role: str, name: str | None, hospitals: Iterable[str], now: float
    ) -> None:
        """Record the user in the directory of each hospital (replacing what was there)."""

    async def staff_of(self, hospital_id: str, roles: frozenset[str] | None) -> list[str]:
        """Subs of the hospital's directory, of the given roles (any when None)."""


def _insert_rows(items: Sequence[NewNotification]) -> list[tuple[Any, ...]]:
    return [
        (
            n.recipient,
            n.kind,
            n.title,
            n.message,
            n.hospital_id,
            n.alert_id,
            n.severity,
            n.created_ts,
            n.dedupe_key,
        )
        for n in items
    ]


class SqliteNotificationStore:
    """On the alert store's connections: writes on its writer connection's thread, each a
    whole transaction of its own between the alert store's batches."""

    def __init__(self, store: SqliteAlertStore) -> None:
        self._store = store

    async def _write(self, fn: Any) -> Any:
        def transaction(conn: sqlite3.Connection) -> Any:
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = fn(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return result

        return await run_on_thread(self._store._conn(), transaction)

    async def _read(self, query: str, args: Sequence[Any]) -> list[Any]:
        async with self._store._conn(read=True).execute(query, args) as cur:
            return list(await cur.fetchall())

    async def add(self, items: Sequence[NewNotification]) -> list[NotificationRecord]:
        rows = _insert_rows(items)

        def insert(conn: sqlite3.Connection) -> list[NotificationRecord]:
            written = []
            for row in rows:
                cur = conn.execute(
                    "INSERT OR IGNORE INTO notifications (recipient, kind, title, message, "
                    "hospital_id, alert_id, severity, created_ts, dedupe_key) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    row,
                )
                if cur.rowcount == 1:
                    written.append(record((cur.lastrowid, *row[:8], None)))
            return written

        result: list[NotificationRecord] = await self._write(insert)
        return result

    async def page(
        self, recipient: str, unread_only: bool, before_id: int | None, limit: int
    ) -> list[NotificationRecord]:
        query = f"{SELECT} WHERE recipient = ?"
        args: list[Any] = [recipient]
        if unread_only:
            query += " AND read_ts IS NULL"
        if before_id is not None:
            query += " AND id < ?"
            args.append(before_id)
        query += " ORDER BY id DESC LIMIT ?"
        args.append(limit)
        return [record(r) for r in await self._read(query, args)]

    async def after(self, recipient: str, after_id: int, limit: int) -> list[NotificationRecord]:
        rows = await self._read(
            f"{SELECT} WHERE recipient = ? AND id > ? ORDER BY id LIMIT ?",
            (recipient, after_id, limit),
        )
        return [record(r) for r in rows]

    async def newest_id(self, recipient: str) -> int:
        rows = await self._read(
            "SELECT MAX(id) FROM notifications WHERE recipient = ?", (recipient,)
        )
        return int(rows[0][0] or 0)

    async def holding(self, dedupe_key: str, recipients: Sequence[str]) -> set[str]:
        if not recipients:
            return set()
        query = "SELECT recipient FROM notifications WHERE dedupe_key = ? AND recipient IN "
        query += f"({','.join('?' * len(recipients))})"
        rows = await self._read(query, (dedupe_key, *recipients))
        return {str(r[0]) for r in rows}

    async def unread(self, recipient: str) -> int:
        rows = await self._read(
            "SELECT COUNT(*) FROM notifications WHERE recipient = ? AND read_ts IS NULL",
            (recipient,),
        )
        return int(rows[0][0])

    async def mark_read(self, recipient: str, ids: Sequence[int] | None, now: float) -> list[int]:
        def update(conn: sqlite3.Connection) -> list[int]:
            query = "UPDATE notifications SET read_ts = ? WHERE recipient = ? AND read_ts IS NULL"
            args: list[Any] = [now, recipient]
            if ids is not None:
                query += f" AND id IN ({','.join('?' * len(ids))})"
                args.extend(ids)
            return sorted(int(r[0]) for r in conn.execute(query + " RETURNING id", args))

        if ids is not None and not ids:
            return []
        result: list[int] = await self._write(update)
        return result

    async def remember(
        self, sub: str, role: str, name: str | None, hospitals: Iterable[str], now: float
    ) -> None:
        rows = [(h, sub, role, name, now) for h in sorted(set(hospitals))]

        def replace(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM staff_directory WHERE sub = ?", (sub,))
            conn.executemany(
                "INSERT INTO staff_directory (hospital_id, sub, role, name, seen_ts) "
                "VALUES (?, ?, ?, ?, ?)",
                rows,
            )

        await self._write(replace)

    async def staff_of(self, hospital_id: str, roles: frozenset[str] | None) -> list[str]:
        rows = await self._read(
            "SELECT sub, role FROM staff_directory WHERE hospital_id = ? ORDER BY sub",
            (hospital_id,),
        )
        return [str(r[0]) for r in rows if roles is None or r[1] in roles]
