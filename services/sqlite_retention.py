"""Retention of the SQLite event log: which events `SqliteAlertStore.prune` may remove.

Split from store_sqlite.py to keep each module readable; it runs inside the store's write
transaction, on the writer's connection.
"""

from __future__ import annotations

import aiosqlite

from services.store import RETAINED_EVENTS


async def prune_events(db: aiosqlite.Connection, before_ts: float) -> dict[str, int]:
    """Inside the writer's transaction: per hospital, delete what retention allows and record
    the highest pruned position (a resume from below it gets `stream.reset`). Kept whatever
    their age: each hospital's newest RETAINED_EVENTS events (CONTRACT 4: always replayable,
    and the newest id survives a restart) and everything from the first event of its oldest
    alert that is not resolved."""
    async with db.execute(
        "SELECT a.hospital_id, MIN(e.seq) FROM alerts a JOIN events e ON e.alert_id = a.id "
        "WHERE a.status != 'resolved' GROUP BY a.hospital_id"
    ) as cur:
        floors = {str(r[0]): int(r[1]) for r in await cur.fetchall()}
    async with db.execute(
        "SELECT DISTINCT hospital_id FROM events WHERE occurred_ts < ?", (before_ts,)
    ) as cur:
        hospitals = [str(r[0]) for r in await cur.fetchall()]
    marks: dict[str, int] = {}
    for hospital_id in hospitals:
        async with db.execute(
            "SELECT seq FROM events WHERE hospital_id = ? ORDER BY seq DESC LIMIT 1 OFFSET ?",
            (hospital_id, RETAINED_EVENTS - 1),
        ) as cur:
            row = await cur.fetchone()
        if row is None:
            continue  # no more than RETAINED_EVENTS events: all of them stay
        keep_from = min(int(row[0]), floors.get(hospital_id, int(row[0])))
        async with db.execute(
            "SELECT MAX(seq) FROM events WHERE hospital_id = ? AND seq < ? AND occurred_ts < ?",
            (hospital_id, keep_from, before_ts),
        ) as cur:
            row = await cur.fetchone()
        if row is None or row[0] is None:
            continue
        through = marks[hospital_id] = int(row[0])
        await db.execute(
            "DELETE FROM events WHERE hospital_id = ? AND seq <= ? AND occurred_ts < ?",
            (hospital_id, through, before_ts),
        )
        await db.execute(
            "INSERT INTO prune_marks (hospital_id, pruned_through) VALUES (?, ?) "
            "ON CONFLICT(hospital_id) DO UPDATE SET "
            "pruned_through = MAX(pruned_through, excluded.pruned_through)",
            (hospital_id, through),
        )
    return marks
