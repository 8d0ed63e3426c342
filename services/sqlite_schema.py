"""The SQLite file: its schema and migrations, run at start-up (PRAGMA user_version), and
its journal mode (WAL, kept in the file).

Each migration runs once, in order, in its own transaction; a database from a newer version
than this code knows is refused rather than guessed at.
"""

from __future__ import annotations

import asyncio
import sqlite3

import aiosqlite

from services import device_events, vitals_schema

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
    # 3: token revocations (admin.revokeTokens, CONTRACT 11): a user's tokens issued before a
    # moment (kind "subject", `issued_before`), or one token by its jti (kind "token").
    """
    CREATE TABLE token_revocations (
        kind TEXT NOT NULL CHECK (kind IN ('subject', 'token')),
        value TEXT NOT NULL,
        issued_before REAL,
        revoked_ts REAL NOT NULL,
        revoked_by TEXT NOT NULL,
        PRIMARY KEY (kind, value)
    );
    """,
    # 4 (integrations, CONTRACT 9): API keys (a hash of each), responses remembered for
    # inbound Idempotency-Keys, outbound webhook endpoints with their delivery cursor, and
    # every delivery attempt (services/integration_store.py).
    """
    CREATE TABLE api_keys (
        key_id TEXT PRIMARY KEY,
        hospital_id TEXT NOT NULL,
        name TEXT NOT NULL,
        prefix TEXT NOT NULL,
        key_hash TEXT NOT NULL UNIQUE,
        scopes TEXT NOT NULL,
        signing_secret TEXT,
        created_ts REAL NOT NULL,
        last_used_ts REAL,
        revoked_ts REAL
    );
    CREATE INDEX api_keys_by_hospital ON api_keys (hospital_id, created_ts);
    CREATE INDEX api_keys_by_prefix ON api_keys (prefix);
    CREATE TABLE inbound_responses (
        hospital_id TEXT NOT NULL,
        idempotency_key TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        status INTEGER NOT NULL,
        body BLOB NOT NULL,
        created_ts REAL NOT NULL,
        PRIMARY KEY (hospital_id, idempotency_key)
    );
    CREATE INDEX inbound_responses_by_time ON inbound_responses (created_ts);
    CREATE TABLE webhooks (
        webhook_id TEXT PRIMARY KEY,
        hospital_id TEXT NOT NULL,
        url TEXT NOT NULL,
        events TEXT NOT NULL,
        description TEXT,
        secret TEXT NOT NULL,
        created_ts REAL NOT NULL,
        enabled INTEGER NOT NULL,
        cursor INTEGER NOT NULL,
        attempt INTEGER NOT NULL,
        next_attempt_ts REAL NOT NULL,
        failing_since REAL
    );
    CREATE INDEX webhooks_by_hospital ON webhooks (hospital_id, created_ts);
    CREATE TABLE webhook_attempts (
        n INTEGER PRIMARY KEY,
        webhook_id TEXT NOT NULL,
        event_id TEXT NOT NULL,
        attempt INTEGER NOT NULL,
        status TEXT NOT NULL,
        http_status INTEGER,
        error TEXT,
        at REAL NOT NULL
    );
    CREATE INDEX webhook_attempts_by_webhook ON webhook_attempts (webhook_id, n);
    CREATE INDEX webhook_attempts_by_time ON webhook_attempts (at);
    """,
    # 5: notifications (CONTRACT 10): each user's inbox, ids in commit order, a domain rule's
    # notification written once per recipient (dedupe_key); and the staff directory (users
    # seen, by hospital) that finds the charge nurses and admins to notify.
    """
    CREATE TABLE notifications (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        recipient TEXT NOT NULL,
        kind TEXT NOT NULL,
        title TEXT NOT NULL,
        message TEXT,
        hospital_id TEXT,
        alert_id TEXT,
        severity TEXT,
        created_ts REAL NOT NULL,
        read_ts REAL,
        dedupe_key TEXT
    );
    CREATE INDEX notifications_by_recipient ON notifications (recipient, id);
    CREATE INDEX notifications_unread ON notifications (recipient) WHERE read_ts IS NULL;
    CREATE UNIQUE INDEX notifications_once ON notifications (recipient, dedupe_key);
    CREATE TABLE staff_directory (
        hospital_id TEXT NOT NULL,
        sub TEXT NOT NULL,
        role TEXT NOT NULL,
        name TEXT,
        seen_ts REAL NOT NULL,
        PRIMARY KEY (hospital_id, sub)
    );
    CREATE INDEX staff_directory_by_sub ON staff_directory (sub);
    """,
    # 6: devices, vitals and threshold rules (CONTRACT 8; services/vitals_schema.py).
    vitals_schema.SQLITE,
    # 7: the device event log and each webhook endpoint's cursor over it (outbound
    # device.* webhooks; services/device_events.py).
    device_events.SQLITE,
    # 8: notifications from the event log: the sweep's cursor (services/notification_cursor.py),
    # one for the whole file since SQLite numbers events in one sequence; it starts at the
    # log's end, so an upgraded database does not notify anyone of its past.
    """
    CREATE TABLE notification_cursors (
        name TEXT PRIMARY KEY,
        seq INTEGER NOT NULL
    );
    INSERT INTO notification_cursors (name, seq) SELECT '*', COALESCE(MAX(seq), 0) FROM events;
    """,
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
