"""The SQLite schema and its migrations, run at start-up (PRAGMA user_version).

Each migration runs once, in order, in its own transaction; a database from a newer version
than this code knows is refused rather than guessed at.
"""

from __future__ import annotations

import aiosqlite

MIGRATIONS: list[str] = [
    # 1: alerts (current state), the append-only event log, and per-hospital prune marks.
    """
    CREATE TABLE alerts (
        n INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        hospital_id TEXT NOT NULL,
        status TEXT NOT NULL,
        priority TEXT NOT NULL,
        created_ts REAL NOT NULL,
        responded_ts REAL,
        escalation_due REAL,
        version INTEGER NOT NULL,
        body TEXT NOT NULL
    );
    CREATE INDEX alerts_by_hospital ON alerts (hospital_id, n);
    CREATE INDEX alerts_open ON alerts (hospital_id, status);
    CREATE INDEX alerts_recent ON alerts (hospital_id, created_ts);
    CREATE INDEX alerts_escalating ON alerts (escalation_due) WHERE escalation_due IS NOT NULL;
    CREATE TABLE events (
        seq INTEGER PRIMARY KEY,
        hospital_id TEXT NOT NULL,
        alert_id TEXT NOT NULL,
        type TEXT NOT NULL,
        actor_id TEXT NOT NULL,
        occurred_ts REAL NOT NULL,
        detail TEXT,
        payload BLOB NOT NULL
    );
    CREATE INDEX events_by_hospital ON events (hospital_id, seq);
    CREATE INDEX events_by_alert ON events (alert_id, seq);
    CREATE INDEX events_by_time ON events (occurred_ts);
    CREATE TABLE prune_marks (
        hospital_id TEXT PRIMARY KEY,
        pruned_through INTEGER NOT NULL
    );
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)


class SchemaError(Exception):
    pass


async def schema_version(db: aiosqlite.Connection) -> int:
    async with db.execute("PRAGMA user_version") as cur:
        row = await cur.fetchone()
    return int(row[0]) if row else 0


async def migrate(db: aiosqlite.Connection) -> int:
    """Bring the database to SCHEMA_VERSION; returns the version it had."""
    found = await schema_version(db)
    if found > SCHEMA_VERSION:
        raise SchemaError(
            f"the database has schema version {found}; this server knows up to {SCHEMA_VERSION}"
        )
    for version in range(found + 1, SCHEMA_VERSION + 1):
        script = MIGRATIONS[version - 1]
        # executescript commits first; the whole step is one transaction of its own.
        await db.executescript(
            f"BEGIN IMMEDIATE;\n{script}\nPRAGMA user_version = {version};\nCOMMIT;"
        )
    return found
