"""The SQLite file: its schema and migrations, run at start-up (PRAGMA user_version), and
its journal mode (WAL, kept in the file).

Each migration runs once, in order, in its own transaction; a database from a newer version
than this code knows is refused rather than guessed at.
"""

from __future__ import annotations

import asyncio
import sqlite3

import aiosqlite

from services import vitals_schema

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
    # 2: createAlert idempotency keys (CONTRACT 7), written in the alert's transaction; the
    # primary key decides between two writers claiming one key.
    """
    CREATE TABLE idempotency_keys (
        hospital_id TEXT NOT NULL,
        idempotency_key TEXT NOT NULL,
        alert_id TEXT NOT NULL,
        created_ts REAL NOT NULL,
        PRIMARY KEY (hospital_id, idempotency_key)
    );
    CREATE INDEX idempotency_keys_by_time ON idempotency_keys (created_ts);
    """,
    # 3: devices, vitals and threshold rules (CONTRACT 8; services/vitals_schema.py).
    vitals_schema.SQLITE,
]

SCHEMA_VERSION = len(MIGRATIONS)
WAL_ATTEMPTS = 20


class SchemaError(Exception):
    pass


async def schema_version(db: aiosqlite.Connection) -> int:
    async with db.execute("PRAGMA user_version") as cur:
        row = await cur.fetchone()
    return int(row[0]) if row else 0


async def use_wal(db: aiosqlite.Connection) -> None:
    """WAL is kept in the file. Switching a new file to it takes a lock SQLite does not wait
    for (busy_timeout does not apply), so a second process opening it just then retries."""
    for attempt in range(WAL_ATTEMPTS):
        try:
            await db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY or attempt == WAL_ATTEMPTS - 1:
                raise
            await asyncio.sleep(0.01 * (attempt + 1))


async def migrate(db: aiosqlite.Connection) -> int:
    """Bring the database to SCHEMA_VERSION; returns the version it had."""
    found = await schema_version(db)
    for version in range(found + 1, SCHEMA_VERSION + 1):
        # The version is read again under the write lock: another process opening the same
        # new file at the same moment may have run this step already.
        await db.execute("BEGIN IMMEDIATE")
        try:
            current = _known(await schema_version(db))
            if current < version:
                for statement in _statements(MIGRATIONS[version - 1]):
                    await db.execute(statement)
                await db.execute(f"PRAGMA user_version = {version}")
            await db.execute("COMMIT")
        except BaseException:
            await db.execute("ROLLBACK")
            raise
    return _known(found)


def _known(version: int) -> int:
    if version > SCHEMA_VERSION:
        raise SchemaError(
            f"the database has schema version {version}; this server knows up to {SCHEMA_VERSION}"
        )
    return version


def _statements(script: str) -> list[str]:
    """A migration's statements, one by one (executescript would commit the transaction)."""
    statements: list[str] = []
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            statements.append(pending.strip())
            pending = ""
    if pending.strip():
        raise SchemaError(f"incomplete statement in a migration: {pending.strip()[:60]!r}")
    return statements
