"""Retention of the SQLite event log: which events `SqliteAlertStore.prune` may remove.

Split from store_sqlite.py to keep each module readable. It runs as a step of the store's
write batch (services/sqlite_batch.py): inside the batch's transaction, on the writer
connection's own thread, so it is plain sqlite3.
"""

from __future__ import annotations

import sqlite3

from services.store import RETAINED_EVENTS


def prune_events(conn: sqlite3.Connection, before_ts: float) -> dict[str, int]:
    """Inside the writer's transaction: per hospital, delete what retention allows and record
    the highest pruned position (a resume from below it gets `stream.reset`). Kept whatever
    their age: each hospital's newest RETAINED_EVENTS events (CONTRACT 4: always replayable,
    and the newest id survives a restart) and everything from the first event of its oldest
    alert that is not resolved."""
    floors = {
        str(r[0]): int(r[1])
        for r in conn.execute(
            "SELECT a.hospital_id, MIN(e.seq) FROM alerts a JOIN events e ON e.alert_id = a.id "
            "WHERE a.status != 'resolved' GROUP BY a.hospital_id"
        )
    }
    hospitals = [
        str(r[0])
        for r in conn.execute(
            "SELECT DISTINCT hospital_id FROM events WHERE occurred_ts < ?", (before_ts,)
        )
    ]
    marks: dict[str, int] = {}
    for hospital_id in hospitals:
        row = conn.execute(
            "SELECT seq FROM events WHERE hospital_id = ? ORDER BY seq DESC LIMIT 1 OFFSET ?",
            (hospital_id, RETAINED_EVENTS - 1),
        ).fetchone()
        if row is None:
            continue  # no more than RETAINED_EVENTS events: all of them stay
        keep_from = min(int(row[0]), floors.get(hospital_id, int(row[0])))
        row = conn.execute(
            "SELECT MAX(seq) FROM events WHERE hospital_id = ? AND seq < ? AND occurred_ts < ?",
            (hospital_id, keep_from, before_ts),
        ).fetchone()
        if row is None or row[0] is None:
            continue
        through = marks[hospital_id] = int(row[0])
        conn.execute(
            "DELETE FROM events WHERE hospital_id = ? AND seq <= ? AND occurred_ts < ?",
            (hospital_id, through, before_ts),
        )
        conn.execute(
            "INSERT INTO prune_marks (hospital_id, pruned_through) VALUES (?, ?) "
            "ON CONFLICT(hospital_id) DO UPDATE SET "
            "pruned_through = MAX(pruned_through, excluded.pruned_through)",
            (hospital_id, through),
        )
    return marks


def prune_keys(conn: sqlite3.Connection, before_ts: float) -> int:
    """Inside the writer's transaction: forget createAlert idempotency keys stored before
    `before_ts` (a lookup already ignores them; this keeps the table small)."""
    return int(
        conn.execute("DELETE FROM idempotency_keys WHERE created_ts < ?", (before_ts,)).rowcount
    )
