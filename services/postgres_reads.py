"""The read side of the PostgreSQL store: pages, event ranges, positions and the figures metrics
need, each on a pooled connection (postgres_pool.repeatable: a dead connection is replaced and the
read tried once more; a database that stays away is SERVICE_UNAVAILABLE).

The same queries and answers as sqlite_reads.py; split from store_postgres.py to keep each
module readable. `PostgresAlertStore` provides `_pool`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg

from rpc.errors import ErrorCode, RpcError
from schemas.alerts import Alert, AlertStatus, Priority
from services.postgres_pool import repeatable
from services.store import ResponseStats, StoredEvent

# As sqlite_reads.RESPONSE_STATS: alerts of the window that are due (answered, or past their
# target) and answered in time; $1..$4 are the targets of critical, high, medium and low.
RESPONSE_STATS = """
WITH window_alerts AS (
    SELECT created_ts, responded_ts, CASE priority WHEN 'critical' THEN $1::float8
        WHEN 'high' THEN $2::float8 WHEN 'medium' THEN $3::float8 ELSE $4::float8 END AS target
    FROM alerts WHERE hospital_id = $6 AND created_ts >= $7
)
SELECT
    COUNT(*) FILTER (WHERE responded_ts IS NOT NULL OR created_ts + target <= $5),
    COUNT(*) FILTER (WHERE responded_ts IS NOT NULL AND responded_ts - created_ts <= target),
    AVG(responded_ts - created_ts)
FROM window_alerts
"""
EVENT_COLUMNS = "SELECT seq, hospital_id, alert_id, payload FROM events"


def _event(row: Any) -> StoredEvent:
    return StoredEvent(int(row[0]), row[1], row[2], bytes(row[3]))


class PostgresReads:
    """Mixed into PostgresAlertStore, which provides the pool."""

    _pool: asyncpg.Pool | None

    async def _fetch(self, query: str, *args: Any) -> list[Any]:
        return await repeatable(self._pool, lambda conn: conn.fetch(query, *args))

    async def _fetchrow(self, query: str, *args: Any) -> Any:
        return await repeatable(self._pool, lambda conn: conn.fetchrow(query, *args))

    async def list_alerts(
        self, hospital_id: str, status: AlertStatus | None, limit: int, cursor: str | None
    ) -> tuple[list[Alert], str | None]:
        query = "SELECT n, body FROM alerts WHERE hospital_id = $1"
        args: list[Any] = [hospital_id]
        if status is not None:
            args.append(status)
            query += f" AND status = ${len(args)}"
        if cursor is not None:
            if not (cursor.isascii() and cursor.isdigit() and len(cursor) <= 18):
                raise RpcError(
                    ErrorCode.BAD_REQUEST,
                    "Invalid cursor",
                    {"fieldErrors": {"cursor": "not a cursor this server issued"}},
                    jsonrpc_number=-32602,
                )
            args.append(int(cursor))
            query += f" AND n < ${len(args)}"
        args.append(limit + 1)
        query += f" ORDER BY n DESC LIMIT ${len(args)}"
        rows = await self._fetch(query, *args)
        more = len(rows) > limit
        rows = rows[:limit]
        items = [Alert.model_validate_json(row[1]) for row in rows]
        return items, (str(rows[-1][0]) if more and rows else None)

    async def events_after(
        self, hospital_id: str, after_seq: int, limit: int, alert_id: str | None = None
    ) -> list[StoredEvent]:
        if alert_id is None:
            rows = await self._fetch(
                f"{EVENT_COLUMNS} WHERE hospital_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
                hospital_id,
                after_seq,
                limit,
            )
        else:
            rows = await self._fetch(
                f"{EVENT_COLUMNS} WHERE alert_id = $1 AND hospital_id = $2 AND seq > $3 "
                "ORDER BY seq LIMIT $4",
                alert_id,
                hospital_id,
                after_seq,
                limit,
            )
        return [_event(row) for row in rows]

    async def newest_events(self, hospital_id: str, limit: int) -> list[StoredEvent]:
        rows = await self._fetch(
            f"{EVENT_COLUMNS} WHERE hospital_id = $1 ORDER BY seq DESC LIMIT $2",
            hospital_id,
            limit,
        )
        return [_event(row) for row in reversed(rows)]

    async def positions(self, hospital_id: str) -> tuple[int, int]:
        row = await self._fetchrow(
            "SELECT (SELECT MAX(seq) FROM events WHERE hospital_id = $1), "
            "(SELECT pruned_through FROM prune_marks WHERE hospital_id = $1)",
            hospital_id,
        )
        return int(row[0] or 0), int(row[1] or 0)

    async def newest_positions(self, hospital_ids: Sequence[str]) -> dict[str, int]:
        """Each hospital's newest position, from the counters (one indexed read for all)."""
        rows = await self._fetch(
            "SELECT hospital_id, last_seq FROM event_counters WHERE hospital_id = ANY($1::text[])",
            list(hospital_ids),
        )
        return {str(r[0]): int(r[1]) for r in rows}

    async def open_counts(self, hospital_id: str) -> tuple[int, int]:
        row = await self._fetchrow(
            "SELECT COUNT(*), COUNT(*) FILTER (WHERE priority = 'critical') FROM alerts "
            "WHERE hospital_id = $1 AND status <> 'resolved'",
            hospital_id,
        )
        return int(row[0]), int(row[1])

    async def response_stats(
        self, hospital_id: str, since: float, now: float, targets: dict[Priority, float]
    ) -> ResponseStats:
        order = [targets["critical"], targets["high"], targets["medium"], targets["low"]]
        row = await self._fetchrow(RESPONSE_STATS, *order, now, hospital_id, since)
        return ResponseStats(int(row[0]), int(row[1]), None if row[2] is None else float(row[2]))

    async def escalations_due(self) -> list[tuple[str, float]]:
        rows = await self._fetch(
            "SELECT id, escalation_due FROM alerts WHERE escalation_due IS NOT NULL"
        )
        return [(str(r[0]), float(r[1])) for r in rows]
