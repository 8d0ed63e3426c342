"""Copy an embedded SQLite database into PostgreSQL, keeping alert ids and event ids, so that
clients resume across the move with the `lastEventId` they hold.

    python scripts/migrate_sqlite_to_postgres.py --from data/alertwire.db \\
        --to postgresql://alertwire@127.0.0.1:5432/alertwire

Stop the server first (a write after the copy began would not be copied). The target's schema
is migrated first, then everything is copied in ONE transaction: a failure, or Ctrl-C, leaves
the target as it was. A target that already holds alerts or events is refused: this command
moves a deployment, it does not merge two.

Positions. SQLite numbers events with one global sequence, so a hospital's positions rise
but have gaps (1, 4, 5, 9, ...); PostgreSQL numbers each hospital densely from its row in
`event_counters` (postgres_schema.py: a commit writes exactly `last_seq + 1 ..`). Each
hospital's counter is set to its highest copied position, so new events continue right above
the copied ones and a resume from any copied id reads exactly the later events. The gaps stay
in the copied history only, where nothing reads them as missing: replay reads what the log has
after a position, and the cross-node sequencer only sees events committed after the move.

Alerts keep their row number `n` too (the identity sequence is moved past it), so page cursors
handed out before the move stay valid.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402

from services.postgres_schema import migrate  # noqa: E402
from services.sqlite_schema import SCHEMA_VERSION as SQLITE_VERSION  # noqa: E402
from services.sqlite_schema import SchemaError  # noqa: E402

CHUNK = 5000
CONNECT_TIMEOUT_S = 10.0

# (SQLite table, its columns as read, PostgreSQL table, the same columns there).
ALERT_COLUMNS = (
    "n",
    "id",
    "hospital_id",
    "status",
    "priority",
    "created_ts",
    "responded_ts",
    "escalation_due",
    "version",
    "body",
)
EVENT_COLUMNS = (
    "hospital_id",
    "seq",
    "alert_id",
    "type",
    "actor_id",
    "occurred_ts",
    "detail",
    "payload",
)
MARK_COLUMNS = ("hospital_id", "pruned_through")
# createAlert retries keep working across the move: a device that retries with its key after
# the copy gets the alert it raised before it.
KEY_COLUMNS = ("hospital_id", "idempotency_key", "alert_id", "created_ts")
# Revoked tokens stay revoked across the move (admin.revokeTokens).
REVOCATION_COLUMNS = ("kind", "value", "issued_before", "revoked_ts", "revoked_by")
# Each user's inbox, with its ids (subscribers resume by them), and the staff directory.
NOTIFICATION_COLUMNS = (
    "id",
    "recipient",
    "kind",
    "title",
    "message",
    "hospital_id",
    "alert_id",
    "severity",
    "created_ts",
    "read_ts",
    "dedupe_key",
)
DIRECTORY_COLUMNS = ("hospital_id", "sub", "role", "name", "seen_ts")
COPIED = {
    "alerts": ALERT_COLUMNS,
    "events": EVENT_COLUMNS,
    "prune_marks": MARK_COLUMNS,
    "idempotency_keys": KEY_COLUMNS,
    "token_revocations": REVOCATION_COLUMNS,
    "notifications": NOTIFICATION_COLUMNS,
    "staff_directory": DIRECTORY_COLUMNS,
}
# Not copied row by row: SQLite's one notification cursor becomes one per hospital
# (`_set_notification_cursors`).
CONVERTED = {"notification_cursors"}
# Tables the target must not hold rows in (the copy would collide with them or renumber them).
TARGET_TABLES = (
    "alerts",
    "events",
    "event_counters",
    "prune_marks",
    "idempotency_keys",
    "token_revocations",
    "notifications",
    "staff_directory",
    "notification_cursors",
)


class Refused(Exception):
    """The copy cannot be made; the message says why, for the operator."""


@dataclass
class Report:
    alerts: int = 0
    events: int = 0
    prune_marks: int = 0
    keys: int = 0
    revocations: int = 0
    notifications: int = 0
    hospitals: dict[str, int] = field(default_factory=dict)  # hospital -> last position
    skipped_empty: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [
            f"copied {self.alerts} alerts, {self.events} events, {self.prune_marks} prune "
            f"marks and {self.keys} idempotency keys of {len(self.hospitals)} hospitals",
            f"copied {self.revocations} token revocations",
        ]
        if self.notifications:
            out.append(f"  and {self.notifications} notifications")
        for hospital, last in sorted(self.hospitals.items()):
            out.append(f"  {hospital}: new events continue after {last:016d}")
        if self.skipped_empty:
            out.append(f"  empty tables not copied: {', '.join(sorted(self.skipped_empty))}")
        return out


def where(url: str) -> str:
    """host:port/database of a URL, without user or password (for messages)."""
    parts = urlsplit(url)
    return f"{parts.hostname or 'localhost'}:{parts.port or 5432}{parts.path}"


def open_source(path: Path) -> sqlite3.Connection:
    """The SQLite file, read-only, in one read transaction (a consistent snapshot)."""
    if not path.is_file():
        raise Refused(f"no SQLite database at {path}")
    db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None)
    version = int(db.execute("PRAGMA user_version").fetchone()[0])
    if version == 0:
        db.close()
        raise Refused(f"{path} is not an Alertwire database (no schema version)")
    if version > SQLITE_VERSION:
        db.close()
        raise Refused(
            f"{path} has schema version {version}; this command knows up to {SQLITE_VERSION}"
        )
    db.execute("BEGIN")
    _refuse_unknown_rows(db)
    return db


def _tables(db: sqlite3.Connection) -> list[str]:
    rows = db.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
    )
    return [str(r[0]) for r in rows]


def _refuse_unknown_rows(db: sqlite3.Connection) -> None:
    """A table this command does not copy must be empty: silently leaving rows behind would
    make the move lossy."""
    for table in _tables(db):
        quoted = table.replace('"', '""')
        probe = f'SELECT 1 FROM "{quoted}" LIMIT 1'  # noqa: S608 - a name from sqlite_master, quoted
        if table not in COPIED and table not in CONVERTED and db.execute(probe).fetchone():
            raise Refused(
                f"the SQLite table {table!r} holds rows this command does not know how to copy"
            )


def _chunks(db: sqlite3.Connection, table: str, columns: tuple[str, ...]) -> Iterator[list[Any]]:
    orders = {"alerts": "n", "events": "hospital_id, seq", "notifications": "id"}
    order = orders.get(table, "1")
    query = f"SELECT {', '.join(columns)} FROM {table} ORDER BY {order}"  # noqa: S608 - fixed names
    cursor = db.execute(query)
    while rows := cursor.fetchmany(CHUNK):
        yield rows


async def _refuse_non_empty(conn: asyncpg.Connection, url: str) -> None:
    for table in TARGET_TABLES:
        if await conn.fetchval(f"SELECT EXISTS (SELECT 1 FROM {table})"):  # noqa: S608 - fixed
            raise Refused(
                f"the target database {where(url)} is not empty (table {table} has rows); "
                "the copy goes only into a database with no alerts or events"
            )


async def _copy_table(
    conn: asyncpg.Connection, db: sqlite3.Connection, table: str, columns: tuple[str, ...]
) -> int:
    copied = 0
    for rows in _chunks(db, table, columns):
        await conn.copy_records_to_table(table, records=rows, columns=list(columns))
        copied += len(rows)
    return copied


async def _set_positions(conn: asyncpg.Connection) -> dict[str, int]:
    """Each hospital's counter at its highest position (an event's or a prune mark's), so the
    next commit numbers from there; the alert row numbers continue past the copied ones."""
    rows = await conn.fetch(
        "INSERT INTO event_counters (hospital_id, last_seq) "
        "SELECT hospital_id, MAX(seq) FROM ("
        "  SELECT hospital_id, seq FROM events"
        "  UNION ALL SELECT hospital_id, pruned_through FROM prune_marks"
        ") AS positions GROUP BY hospital_id "
        "RETURNING hospital_id, last_seq"
    )
    await conn.execute(
        "SELECT setval(pg_get_serial_sequence('alerts', 'n'), MAX(n)) FROM alerts "
        "HAVING COUNT(*) > 0"
    )
    await conn.execute(
        "SELECT setval(pg_get_serial_sequence('notifications', 'id'), MAX(id)) "
        "FROM notifications HAVING COUNT(*) > 0"
    )
    return {str(r[0]): int(r[1]) for r in rows}


async def _set_notification_cursors(conn: asyncpg.Connection, db: sqlite3.Connection) -> None:
    """The notification sweep's cursor (services/notification_cursor.py). SQLite keeps one over
    its global sequence; positions are copied as they are, so each hospital's cursor is that
    one, or the hospital's last position when lower (its next events, numbered from there,
    are still to be swept). A file from before the sweep had none: every hospital starts at its
    last position, as the schema migration does."""
    swept: int | None = None
    if "notification_cursors" in _tables(db):
        row = db.execute("SELECT seq FROM notification_cursors WHERE name = '*'").fetchone()
        swept = None if row is None else int(row[0])
    await conn.execute(
        "INSERT INTO notification_cursors (hospital_id, seq) "
        "SELECT hospital_id, LEAST(last_seq, $1::bigint) FROM event_counters",
        swept,
    )


async def copy(source: Path, target_url: str) -> Report:
    db = open_source(source)
    try:
        conn = await asyncpg.connect(target_url, timeout=CONNECT_TIMEOUT_S)
    except (OSError, asyncpg.PostgresError) as exc:
        db.close()
        raise Refused(f"cannot connect to {where(target_url)} ({type(exc).__name__})") from exc
    report = Report()
    try:
        async with conn.transaction():
            # The migration runs inside this transaction (a savepoint), so a failed copy
            # leaves no schema behind either; its advisory lock keeps starting nodes waiting.
            await migrate(conn)
            # Nodes started meanwhile must not write until the copy is committed.
            await conn.execute(f"LOCK TABLE {', '.join(TARGET_TABLES)} IN EXCLUSIVE MODE")
            await _refuse_non_empty(conn, target_url)
            for table in _tables(db):
                if table not in COPIED and table not in CONVERTED:
                    report.skipped_empty.append(table)
            report.alerts = await _copy_table(conn, db, "alerts", ALERT_COLUMNS)
            report.events = await _copy_table(conn, db, "events", EVENT_COLUMNS)
            report.prune_marks = await _copy_table(conn, db, "prune_marks", MARK_COLUMNS)
            report.keys = await _copy_table(conn, db, "idempotency_keys", KEY_COLUMNS)
            report.revocations = await _copy_table(
                conn, db, "token_revocations", REVOCATION_COLUMNS
            )
            if "notifications" in _tables(db):  # a file from before notifications has none
                report.notifications = await _copy_table(
                    conn, db, "notifications", NOTIFICATION_COLUMNS
                )
                await _copy_table(conn, db, "staff_directory", DIRECTORY_COLUMNS)
            report.hospitals = await _set_positions(conn)
            await _set_notification_cursors(conn, db)
    finally:
        await conn.close()
        db.close()
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--from", dest="source", required=True, type=Path, help="SQLite file")
    parser.add_argument("--to", dest="target", required=True, help="postgresql://... URL")
    args = parser.parse_args(argv)
    if urlsplit(args.target).scheme not in ("postgresql", "postgres"):
        parser.error("--to must be a postgresql:// URL")
    try:
        report = asyncio.run(copy(args.source, args.target))
    except (Refused, SchemaError) as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 1
    for text in report.lines():
        print(text)
    print(f"committed to {where(args.target)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
