"""An alert's audit trail: every retained event of the alert with its actor, time and the text
written with it (note, reason or resolution), oldest first.

The event log already keeps those columns (`events.type, actor_id, occurred_ts, detail`) for
both stores; this module reads them back, one query per store, beside the stores rather than
inside them so that the store modules stay about writing and streaming. The detail column is
clinical text: it goes to the caller, never to a log.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from services.lifecycle import iso
from services.postgres_pool import repeatable
from services.store import AlertStore, format_event_id
from services.store_postgres import PostgresAlertStore
from services.store_sqlite import SqliteAlertStore

# An alert's history is short (a handful of changes and notes); this only bounds a runaway.
MAX_ENTRIES = 10_000

SQLITE_QUERY = (
    "SELECT seq, type, actor_id, occurred_ts, detail FROM events "
    "WHERE alert_id = ? ORDER BY seq LIMIT ?"
)
POSTGRES_QUERY = (
    "SELECT seq, type, actor_id, occurred_ts, detail FROM events "
    "WHERE alert_id = $1 ORDER BY seq LIMIT $2"
)


@dataclass(frozen=True, slots=True)
class AuditRow:
    event_id: str
    type: str
    actor_id: str
    occurred_at: str
    detail: str | None


def _rows(raw: Sequence[Any]) -> list[AuditRow]:
    return [
        AuditRow(format_event_id(int(r[0])), str(r[1]), str(r[2]), iso(float(r[3])), r[4])
        for r in raw
    ]


class AuditReader(Protocol):
    async def trail(self, alert_id: str) -> list[AuditRow]: ...


class SqliteAuditReader:
    def __init__(self, store: SqliteAlertStore) -> None:
        self._store = store

    async def trail(self, alert_id: str) -> list[AuditRow]:
        async with self._store._conn(read=True).execute(
            SQLITE_QUERY, (alert_id, MAX_ENTRIES)
        ) as cur:
            return _rows(list(await cur.fetchall()))


class PostgresAuditReader:
    def __init__(self, store: PostgresAlertStore) -> None:
        self._store = store

    async def trail(self, alert_id: str) -> list[AuditRow]:
        rows = await repeatable(
            self._store._pool, lambda conn: conn.fetch(POSTGRES_QUERY, alert_id, MAX_ENTRIES)
        )
        return _rows(rows)


def audit_reader(store: AlertStore) -> AuditReader:
    """The reader for the store the services run on."""
    if isinstance(store, PostgresAlertStore):
        return PostgresAuditReader(store)
    if isinstance(store, SqliteAlertStore):
        return SqliteAuditReader(store)
    raise TypeError(f"no audit reader for {type(store).__name__}")
