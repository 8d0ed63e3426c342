"""The notifications seam on PostgreSQL (services/notification_store.py says what and why), on
the alert store's pool. Inserts run under NOTIFICATION_LOCK, a transaction-level advisory lock,
so that ids are handed out in commit order across every node; reads are repeatable
(postgres_pool.repeatable), writes are tried once (postgres_pool.once)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from services.notification_store import (
    SELECT,
    NewNotification,
    NotificationRecord,
    _insert_rows,
    record,
)
from services.postgres_pool import LOST, lost, once, repeatable
from services.store_postgres import PostgresAlertStore

if TYPE_CHECKING:
    from services.postgres_pool import Connection

T = TypeVar("T")

NOTIFICATION_LOCK = 0x616C_6572_746E_6F74

INSERT = (
    "INSERT INTO notifications (recipient, kind, title, message, hospital_id, alert_id, "
    "severity, created_ts, dedupe_key) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) "
    "ON CONFLICT (recipient, dedupe_key) DO NOTHING RETURNING id"
)


class PostgresNotificationStore:
    def __init__(self, store: PostgresAlertStore) -> None:
        self._store = store

    async def _once(self, call: Callable[[Connection], Awaitable[T]]) -> T:
        """A write, tried once: a connection lost meanwhile is SERVICE_UNAVAILABLE."""
        try:
            return await once(self._store._pool, call)
        except LOST as exc:
            raise lost(exc) from exc

    async def _fetch(self, query: str, *args: Any) -> list[Any]:
        return await repeatable(self._store._pool, lambda conn: conn.fetch(query, *args))

    async def add(self, items: Sequence[NewNotification]) -> list[NotificationRecord]:
        rows = _insert_rows(items)

        async def insert(conn: Connection) -> list[NotificationRecord]:
            written = []
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock($1)", NOTIFICATION_LOCK)
                for row in rows:
                    new_id = await conn.fetchval(INSERT, *row)
                    if new_id is not None:
                        written.append(record((new_id, *row[:8], None)))
            return written

        return await self._once(insert)

    async def page(
        self, recipient: str, unread_only: bool, before_id: int | None, limit: int
    ) -> list[NotificationRecord]:
        query = f"{SELECT} WHERE recipient = $1"
        args: list[Any] = [recipient]
        if unread_only:
            query += " AND read_ts IS NULL"
        if before_id is not None:
            args.append(before_id)
            query += f" AND id < ${len(args)}"
        args.append(limit)
        query += f" ORDER BY id DESC LIMIT ${len(args)}"
        return [record(r) for r in await self._fetch(query, *args)]

    async def after(self, recipient: str, after_id: int, limit: int) -> list[NotificationRecord]:
        rows = await self._fetch(
            f"{SELECT} WHERE recipient = $1 AND id > $2 ORDER BY id LIMIT $3",
            recipient,
            after_id,
            limit,
        )
        return [record(r) for r in rows]

    async def newest_id(self, recipient: str) -> int:
        rows = await self._fetch(
            "SELECT MAX(id) FROM notifications WHERE recipient = $1", recipient
        )
        return int(rows[0][0] or 0)

    async def holding(self, dedupe_key: str, recipients: Sequence[str]) -> set[str]:
        if not recipients:
            return set()
        rows = await self._fetch(
            "SELECT recipient FROM notifications WHERE dedupe_key = $1 "
            "AND recipient = ANY($2::text[])",
            dedupe_key,
            list(recipients),
        )
        return {str(r[0]) for r in rows}

    async def unread(self, recipient: str) -> int:
        rows = await self._fetch(
            "SELECT COUNT(*) FROM notifications WHERE recipient = $1 AND read_ts IS NULL",
            recipient,
        )
        return int(rows[0][0])

    async def mark_read(self, recipient: str, ids: Sequence[int] | None, now: float) -> list[int]:
        if ids is not None and not ids:
            return []
        query = "UPDATE notifications SET read_ts = $1 WHERE recipient = $2 AND read_ts IS NULL"
        args: list[Any] = [now, recipient]
        if ids is not None:
            args.append(list(ids))
            query += " AND id = ANY($3::bigint[])"
        rows = await self._once(lambda conn: conn.fetch(query + " RETURNING id", *args))
        return sorted(int(r[0]) for r in rows)

    async def remember(
        self, sub: str, role: str, name: str | None, hospitals: Iterable[str], now: float
    ) -> None:
        rows = [(h, sub, role, name, now) for h in sorted(set(hospitals))]

        async def replace(conn: Connection) -> None:
            async with conn.transaction():
                await conn.execute("DELETE FROM staff_directory WHERE sub = $1", sub)
                await conn.executemany(
                    "INSERT INTO staff_directory (hospital_id, sub, role, name, seen_ts) "
                    "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (hospital_id, sub) DO UPDATE SET "
                    "role = excluded.role, name = excluded.name, seen_ts = excluded.seen_ts",
                    rows,
                )

        await self._once(replace)

    async def staff_of(self, hospital_id: str, roles: frozenset[str] | None) -> list[str]:
        rows = await self._fetch(
            "SELECT sub, role FROM staff_directory WHERE hospital_id = $1 ORDER BY sub",
            hospital_id,
        )
        return [str(r[0]) for r in rows if roles is None or r[1] in roles]
