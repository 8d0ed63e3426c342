"""The read side of the SQLite store: pages, event ranges, positions and the figures metrics
need. Queries go to the reader connection (WAL lets it read while the writer commits).

Split from store_sqlite.py to keep each module readable; `SqliteAlertStore` provides `_conn`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import aiosqlite

from rpc.errors import ErrorCode, RpcError
from schemas.alerts import Alert, AlertStatus, Priority
from services.store import ResponseStats, StoredEvent

# Alerts of the window that are due (answered, or past their target) and answered in time;
# the target is the priority's, bound as parameters in the order critical, high, medium, low.
RESPONSE_STATS = """
SELECT
    SUM(responded_ts IS NOT NULL OR created_ts + (CASE priority WHEN 'critical' THEN ?
        WHEN 'high' THEN ? WHEN 'medium' THEN ? ELSE ? END) <= ?),
    SUM(responded_ts IS NOT NULL AND responded_ts - created_ts <= (CASE priority
        WHEN 'critical' THEN ? WHEN 'high' THEN ? WHEN 'medium' THEN ? ELSE ? END)),
    AVG(responded_ts - created_ts)
FROM alerts WHERE hospital_id = ? AND created_ts >= ?
"""


class SqliteReads:
    """Mixed into SqliteAlertStore, which provides the connections."""

    def _conn(self, read: bool = False) -> aiosqlite.Connection:
        raise NotImplementedError

    async def list_alerts(
        self, hospital_id: str, status: AlertStatus | None, limit: int, cursor: str | None
    ) -> tuple[list[Alert], str | None]:
        query = "SELECT n, body FROM alerts WHERE hospital_id = ?"
        args: list[Any] = [hospital_id]
        if status is not None:
            query += " AND status = ?"
            args.append(status)
        if cursor is not None:
            if not (cursor.isascii() and cursor.isdigit() and len(cursor) <= 18):
                raise RpcError(
                    ErrorCode.BAD_REQUEST,
                    "Invalid cursor",
                    {"fieldErrors": {"cursor": "not a cursor this server issued"}},
                    jsonrpc_number=-32602,
                )
            query += " AND n < ?"
            args.append(int(cursor))
        query += " ORDER BY n DESC LIMIT ?"
        args.append(limit + 1)
        async with self._conn(read=True).execute(query, args) as cur:
            rows = list(await cur.fetchall())
        more = len(rows) > limit
        rows = rows[:limit]
        items = [Alert.model_validate_json(row[1]) for row in rows]
        return items, (str(rows[-1][0]) if more and rows else None)

    async def _events(self, query: str, args: Sequence[Any]) -> list[StoredEvent]:
        async with self._conn(read=True).execute(query, args) as cur:
            rows = await cur.fetchall()
        return [StoredEvent(int(r[0]), r[1], r[2], bytes(r[3])) for r in rows]

    async def events_after(
        self, hospital_id: str, after_seq: int, limit: int, alert_id: str | None = None
    ) -> list[StoredEvent]:
        if alert_id is None:
            return await self._events(
                "SELECT seq, hospital_id, alert_id, payload FROM events "
                "WHERE hospital_id = ? AND seq > ? ORDER BY seq LIMIT ?",
                (hospital_id, after_seq, limit),
            )
        return await self._events(
            "SELECT seq, hospital_id, alert_id, payload FROM events "
            "WHERE alert_id = ? AND hospital_id = ? AND seq > ? ORDER BY seq LIMIT ?",
            (alert_id, hospital_id, after_seq, limit),
        )

    async def newest_events(self, hospital_id: str, limit: int) -> list[StoredEvent]:
        events = await self._events(
            "SELECT seq, hospital_id, alert_id, payload FROM events "
            "WHERE hospital_id = ? ORDER BY seq DESC LIMIT ?",
            (hospital_id, limit),
        )
        events.reverse()
        return events

    async def _scalar(self, query: str, args: Sequence[Any]) -> Any:
        async with self._conn(read=True).execute(query, args) as cur:
            row = await cur.fetchone()
        return row[0] if row else None

    async def positions(self, hospital_id: str) -> tuple[int, int]:
        newest = await self._scalar(
            "SELECT MAX(seq) FROM events WHERE hospital_id = ?", (hospital_id,)
        )
        pruned = await self._scalar(
            "SELECT pruned_through FROM prune_marks WHERE hospital_id = ?", (hospital_id,)
        )
        return int(newest or 0), int(pruned or 0)

    async def open_counts(self, hospital_id: str) -> tuple[int, int]:
        async with self._conn(read=True).execute(
            "SELECT COUNT(*), COALESCE(SUM(priority = 'critical'), 0) FROM alerts "
            "WHERE hospital_id = ? AND status != 'resolved'",
            (hospital_id,),
        ) as cur:
            row = await cur.fetchone()
        return (int(row[0]), int(row[1])) if row else (0, 0)

    async def response_stats(
        self, hospital_id: str, since: float, now: float, targets: dict[Priority, float]
    ) -> ResponseStats:
        query = RESPONSE_STATS
        order = [targets["critical"], targets["high"], targets["medium"], targets["low"]]
        args = [*order, now, *order, hospital_id, since]
        async with self._conn(read=True).execute(query, args) as cur:
            row = await cur.fetchone()
        if row is None:
            return ResponseStats(0, 0, None)
        return ResponseStats(int(row[0] or 0), int(row[1] or 0), row[2])

    async def escalations_due(self) -> list[tuple[str, float]]:
        async with self._conn(read=True).execute(
            "SELECT id, escalation_due FROM alerts WHERE escalation_due IS NOT NULL"
        ) as cur:
            return [(str(r[0]), float(r[1])) for r in await cur.fetchall()]
