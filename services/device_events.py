"""The durable log of device events (`device.status`), per hospital, for outbound webhooks
(CONTRACT 9: "`device.*` when asked").

A device's status is conflated live state (CONTRACT 8): subscribers see its latest value, and
it has no place in the alert event log. A webhook receiver, though, is promised every event in
order and at least once, across restarts and nodes, so each change a receiver should hear of is
appended here, in the same transaction as the device row's write (services/vitals_sqlite.py,
services/vitals_postgres.py): a change is never stored without its event, nor an event
without its change. What counts as a change: a new device, another status or another patient
(battery, detail and last-seen alone are not worth a POST), including the silence watcher
marking a device offline and a vitals report bringing an offline device back.

Positions: a counter row per hospital (`device_event_counters`) is incremented in the writing
transaction. On PostgreSQL that row stays locked until the commit, so a hospital's positions
commit in the order they were handed out and a cursor never reads position 7 before a
transaction holding 6 has committed (a sequence would allow exactly that). SQLite has one
writer, but the same counter keeps both stores alike, and a position is never reused after its
event is pruned (the counter is never pruned). Counters are taken in hospital order, after the
device rows: the lock order is the same in every transaction, so two never deadlock.

The wire id is "dev-" and the position at the alert ids' fixed width: distinct from every
alert event id (digits only), and ordered like the positions within a hospital.

Retention (the alert log's `RETENTION_HOURS`, the container's pruning task): events older than
the cut-off go, except each hospital's newest RETAINED_EVENTS.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from services.lifecycle import iso
from services.store import RETAINED_EVENTS, format_event_id
from services.vitals_store import DeviceRecord

if TYPE_CHECKING:
    from services.postgres_pool import Connection

EVENT_TYPE = "device.status"
ID_PREFIX = "dev-"


class DeviceEventLog(Protocol):
    """What webhooks read of the log (the vitals stores implement it)."""

    async def device_events_after(
        self, hospital_id: str, after_seq: int, limit: int
    ) -> list[StoredDeviceEvent]: ...

    async def newest_device_event(self, hospital_id: str) -> int: ...


@dataclass(frozen=True, slots=True)
class StoredDeviceEvent:
    seq: int  # the hospital's device event position
    hospital_id: str
    id: str
    payload: bytes  # the event exactly as it is POSTed


def is_change(previous: DeviceRecord | None, device: DeviceRecord) -> bool:
    """Whether a device write is worth an event (see the module's docstring)."""
    return (
        previous is None
        or previous.status != device.status
        or previous.patient_id != device.patient_id
    )


def event_id(seq: int) -> str:
    return ID_PREFIX + format_event_id(seq)


def payload(seq: int, device: DeviceRecord) -> bytes:
    return orjson.dumps(
        {
            "id": event_id(seq),
            "type": EVENT_TYPE,
            "hospitalId": device.hospital_id,
            "device": device.wire().model_dump(by_alias=True, mode="json"),
            "occurredAt": iso(device.updated_ts),
        }
    )


def _by_hospital(devices: Iterable[DeviceRecord]) -> dict[str, list[DeviceRecord]]:
    grouped: dict[str, list[DeviceRecord]] = {}
    for device in devices:
        grouped.setdefault(device.hospital_id, []).append(device)
    return dict(sorted(grouped.items()))


def _rows(hospital_id: str, last: int, devices: Sequence[DeviceRecord]) -> list[tuple[Any, ...]]:
    first = last - len(devices) + 1
    return [
        (hospital_id, first + i, d.updated_ts, payload(first + i, d)) for i, d in enumerate(devices)
    ]


# --- SQLite (inside a write batch's step) -------------------------------------------------------

SQLITE_COUNT = (
    "INSERT INTO device_event_counters (hospital_id, last_seq) VALUES (?, ?) "
    "ON CONFLICT (hospital_id) DO UPDATE SET last_seq = last_seq + excluded.last_seq "
    "RETURNING last_seq"
)
SQLITE_INSERT = (
    "INSERT INTO device_events (hospital_id, seq, occurred_ts, payload) VALUES (?, ?, ?, ?)"
)


def append_sqlite(conn: sqlite3.Connection, devices: Iterable[DeviceRecord]) -> None:
    """Append one event per device (in the order given) inside the caller's transaction."""
    for hospital_id, changed in _by_hospital(devices).items():
        last = int(conn.execute(SQLITE_COUNT, (hospital_id, len(changed))).fetchone()[0])
        conn.executemany(SQLITE_INSERT, _rows(hospital_id, last, changed))


def events_after_sqlite(
    conn: sqlite3.Connection, hospital_id: str, after_seq: int, limit: int
) -> list[StoredDeviceEvent]:
    rows = conn.execute(
        "SELECT seq, payload FROM device_events WHERE hospital_id = ? AND seq > ? "
        "ORDER BY seq LIMIT ?",
        (hospital_id, after_seq, limit),
    ).fetchall()
    return [_event(hospital_id, row) for row in rows]


def newest_sqlite(conn: sqlite3.Connection, hospital_id: str) -> int:
    row = conn.execute(
        "SELECT last_seq FROM device_event_counters WHERE hospital_id = ?", (hospital_id,)
    ).fetchone()
    return 0 if row is None else int(row[0])


PRUNE = (
    "DELETE FROM device_events WHERE occurred_ts < {ts} AND seq < ("
    "SELECT k.seq FROM device_events k WHERE k.hospital_id = device_events.hospital_id "
    "ORDER BY k.seq DESC LIMIT 1 OFFSET {keep})"
)


def prune_sqlite(conn: sqlite3.Connection, before_ts: float) -> int:
    sql = PRUNE.format(ts="?", keep="?")
    return int(conn.execute(sql, (before_ts, RETAINED_EVENTS - 1)).rowcount)


# --- PostgreSQL (inside the caller's transaction) -----------------------------------------------

POSTGRES_COUNT = (
    "INSERT INTO device_event_counters (hospital_id, last_seq) VALUES ($1, $2) "
    "ON CONFLICT (hospital_id) DO UPDATE SET "
    "last_seq = device_event_counters.last_seq + excluded.last_seq RETURNING last_seq"
)
POSTGRES_INSERT = (
    "INSERT INTO device_events (hospital_id, seq, occurred_ts, payload) VALUES ($1, $2, $3, $4)"
)


async def append_postgres(conn: Connection, devices: Iterable[DeviceRecord]) -> None:
    """Append one event per device (in the order given) inside the caller's transaction; the
    hospitals' counter rows stay locked until it commits."""
    for hospital_id, changed in _by_hospital(devices).items():
        last = int(await conn.fetchval(POSTGRES_COUNT, hospital_id, len(changed)))
        await conn.executemany(POSTGRES_INSERT, _rows(hospital_id, last, changed))


async def events_after_postgres(
    conn: Connection, hospital_id: str, after_seq: int, limit: int
) -> list[StoredDeviceEvent]:
    rows = await conn.fetch(
        "SELECT seq, payload FROM device_events WHERE hospital_id = $1 AND seq > $2 "
        "ORDER BY seq LIMIT $3",
        hospital_id,
        after_seq,
        limit,
    )
    return [_event(hospital_id, row) for row in rows]


async def newest_postgres(conn: Connection, hospital_id: str) -> int:
    value = await conn.fetchval(
        "SELECT last_seq FROM device_event_counters WHERE hospital_id = $1", hospital_id
    )
    return 0 if value is None else int(value)


async def prune_postgres(conn: Connection, before_ts: float) -> int:
    result = await conn.execute(PRUNE.format(ts="$1", keep="$2"), before_ts, RETAINED_EVENTS - 1)
    return int(str(result).rsplit(" ", 1)[-1])


def _event(hospital_id: str, row: Any) -> StoredDeviceEvent:
    seq = int(row[0])
    return StoredDeviceEvent(seq, hospital_id, event_id(seq), bytes(row[1]))


# --- migrations (appended at the end of both MIGRATIONS lists) ----------------------------------

SQLITE = """
CREATE TABLE device_event_counters (
    hospital_id TEXT PRIMARY KEY,
    last_seq INTEGER NOT NULL
);
CREATE TABLE device_events (
    hospital_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    occurred_ts REAL NOT NULL,
    payload BLOB NOT NULL,
    PRIMARY KEY (hospital_id, seq)
);
CREATE INDEX device_events_by_time ON device_events (occurred_ts);
ALTER TABLE webhooks ADD COLUMN device_cursor INTEGER NOT NULL DEFAULT 0;
ALTER TABLE webhooks ADD COLUMN retrying_device INTEGER NOT NULL DEFAULT 0;
"""

POSTGRES = """
CREATE TABLE device_event_counters (
    hospital_id text PRIMARY KEY,
    last_seq bigint NOT NULL
);
CREATE TABLE device_events (
    hospital_id text NOT NULL,
    seq bigint NOT NULL,
    occurred_ts double precision NOT NULL,
    payload bytea NOT NULL,
    PRIMARY KEY (hospital_id, seq)
);
CREATE INDEX device_events_by_time ON device_events (occurred_ts);
ALTER TABLE webhooks ADD COLUMN device_cursor bigint NOT NULL DEFAULT 0;
ALTER TABLE webhooks ADD COLUMN retrying_device boolean NOT NULL DEFAULT false;
"""
