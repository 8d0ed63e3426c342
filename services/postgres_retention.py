"""Retention of the PostgreSQL event log: the same rules as sqlite_retention.py, run inside
the transaction `PostgresAlertStore.prune` opens (a prune that fails halfway leaves nothing).

Pruning does not need the writers' counter locks: it removes only events older than the cut-off
and below each hospital's newest RETAINED_EVENTS, which a commit never touches. A
transaction-scoped advisory lock keeps two nodes from pruning at the same moment (the second
waits, then finds nothing left to do).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from services.store import RETAINED_EVENTS

if TYPE_CHECKING:
    from services.postgres_pool import Connection

# "alertwire prune" as a number; distinct from the migration lock.
PRUNE_LOCK = 0x616C_6572_7470_7275


async def prune_events(conn: Connection, before_ts: float) -> dict[str, int]:
    """Per hospital, delete what retention allows and record the highest pruned position (a
    resume from below it gets `stream.reset`). Kept whatever their age: each hospital's newest
    RETAINED_EVENTS events and everything from the first event of its oldest alert that is
    not resolved. Runs inside the caller's transaction."""
    await conn.execute("SELECT pg_advisory_xact_lock($1)", PRUNE_LOCK)
    rows = await conn.fetch(
        "SELECT a.hospital_id, MIN(e.seq) FROM alerts a "
        "JOIN events e ON e.alert_id = a.id AND e.hospital_id = a.hospital_id "
        "WHERE a.status <> 'resolved' GROUP BY a.hospital_id"
    )
    floors = {str(r[0]): int(r[1]) for r in rows}
    rows = await conn.fetch(
        "SELECT DISTINCT hospital_id FROM events WHERE occurred_ts < $1", before_ts
    )
    marks: dict[str, int] = {}
    for hospital_id in (str(r[0]) for r in rows):
        through = await _prune_hospital(conn, hospital_id, floors.get(hospital_id), before_ts)
        if through is not None:
            marks[hospital_id] = through
    return marks


async def _prune_hospital(
    conn: Connection, hospital_id: str, floor: int | None, before_ts: float
) -> int | None:
    newest_kept = await conn.fetchval(
        "SELECT seq FROM events WHERE hospital_id = $1 ORDER BY seq DESC LIMIT 1 OFFSET $2",
        hospital_id,
        RETAINED_EVENTS - 1,
    )
    if newest_kept is None:
        return None  # no more than RETAINED_EVENTS events: all of them stay
    keep_from = min(int(newest_kept), floor if floor is not None else int(newest_kept))
    through = await conn.fetchval(
        "SELECT MAX(seq) FROM events WHERE hospital_id = $1 AND seq < $2 AND occurred_ts < $3",
        hospital_id,
        keep_from,
        before_ts,
    )
    if through is None:
        return None
    await conn.execute(
        "DELETE FROM events WHERE hospital_id = $1 AND seq <= $2 AND occurred_ts < $3",
        hospital_id,
        through,
        before_ts,
    )
    await conn.execute(
        "INSERT INTO prune_marks (hospital_id, pruned_through) VALUES ($1, $2) "
        "ON CONFLICT (hospital_id) DO UPDATE SET "
        "pruned_through = GREATEST(prune_marks.pruned_through, excluded.pruned_through)",
        hospital_id,
        through,
    )
    return int(through)
