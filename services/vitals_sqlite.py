"""The vitals store on the embedded SQLite file, sharing the alert store's connections.

Writes are steps of the alert store's write batches (`SqliteAlertStore.write_step`): plain
functions that run inside the batch's transaction on the writer connection's thread, in a
savepoint of their own. A report is one step, so it costs no transaction of its own either:
reports arriving together share one group commit with each other and with alert changes. Reads
run on the reader connection's thread in one hop each.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any, TypeVar, cast

from schemas.devices import ThresholdRule
from services import device_events
from services.device_events import StoredDeviceEvent
from services.sqlite_batch import run_on_thread
from services.store_sqlite import SqliteAlertStore
from services.vitals_store import (
    Cursor,
    DeviceChange,
    DeviceRecord,
    ReportWrite,
    StatusWrite,
    StoredReading,
    default_rules,
    reported,
    silenced,
    touched,
)

R = TypeVar("R")

SELECT_DEVICES = (
    "SELECT hospital_id, device_id, patient_id, status, battery, detail, last_seen_ts, updated_ts "
)
UPSERT_DEVICE = """
INSERT INTO devices (
    hospital_id, device_id, patient_id, status, battery, detail, last_seen_ts, updated_ts
) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT(hospital_id, device_id) DO UPDATE SET
    patient_id = excluded.patient_id, status = excluded.status, battery = excluded.battery,
    detail = excluded.detail, last_seen_ts = excluded.last_seen_ts,
    updated_ts = excluded.updated_ts
"""
INSERT_READING = (
    "INSERT INTO vitals_readings (hospital_id, patient_id, device_id, kind, value, measured_ts) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)
UPSERT_LATEST = """
INSERT INTO vitals_latest (hospital_id, patient_id, kind, device_id, value, measured_ts)
VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT(hospital_id, patient_id, kind) DO UPDATE SET
    device_id = excluded.device_id, value = excluded.value, measured_ts = excluded.measured_ts
WHERE excluded.measured_ts >= vitals_latest.measured_ts
"""


def _device(row: Any) -> DeviceRecord:
    return DeviceRecord(
        str(row[0]), str(row[1]), row[2], row[3], row[4], row[5], float(row[6]), float(row[7])
    )


def _device_row(d: DeviceRecord) -> tuple[Any, ...]:
    return (
        d.hospital_id,
        d.device_id,
        d.patient_id,
        d.status,
        d.battery,
        d.detail,
        d.last_seen_ts,
        d.updated_ts,
    )


def _select_device(conn: sqlite3.Connection, hospital_id: str, device_id: str) -> Any:
    return conn.execute(
        SELECT_DEVICES + "FROM devices WHERE hospital_id = ? AND device_id = ?",
        (hospital_id, device_id),
    ).fetchone()


def _record(conn: sqlite3.Connection, write: ReportWrite) -> DeviceChange:
    h, p = write.hospital_id, write.patient_id
    rows = [(h, p, r.device_id, r.kind, r.value, r.measured_ts) for r in write.readings]
    conn.executemany(INSERT_READING, rows)
    conn.executemany(UPSERT_LATEST, [(h, p, r[3], r[2], r[4], r[5]) for r in rows])
    row = _select_device(conn, h, write.device_id)
    previous = None if row is None else _device(row)
    device = touched(previous, write)
    conn.execute(UPSERT_DEVICE, _device_row(device))
    if device_events.is_change(previous, device):
        device_events.append_sqlite(conn, [device])
    return DeviceChange(device, previous)


def _report_status(conn: sqlite3.Connection, write: StatusWrite) -> DeviceChange:
    row = _select_device(conn, write.hospital_id, write.device_id)
    previous = None if row is None else _device(row)
    device = reported(previous, write)
    conn.execute(UPSERT_DEVICE, _device_row(device))
    if device_events.is_change(previous, device):
        device_events.append_sqlite(conn, [device])
    return DeviceChange(device, previous)


def _mark_silent(conn: sqlite3.Connection, device: DeviceRecord, now: float) -> bool:
    """The conditional UPDATE, and the device event when it matched."""
    cur = conn.execute(
        "UPDATE devices SET status = 'offline', updated_ts = ? WHERE hospital_id = ? "
        "AND device_id = ? AND status = ? AND last_seen_ts = ? AND updated_ts = ?",
        (
            now,
            device.hospital_id,
            device.device_id,
            device.status,
            device.last_seen_ts,
            device.updated_ts,
        ),
    )
    if cur.rowcount != 1:
        return False
    device_events.append_sqlite(conn, [silenced(device, now)])
    return True


def _reading(row: Any) -> StoredReading:
    return StoredReading(
        str(row[0]), str(row[1]), row[2], float(row[3]), float(row[4]), int(row[5])
    )


def _rules(conn: sqlite3.Connection, hospital_id: str) -> list[ThresholdRule] | None:
    """The hospital's rules, or None when its defaults were never stored."""
    seeded = conn.execute(
        "SELECT 1 FROM threshold_rules_seeded WHERE hospital_id = ?", (hospital_id,)
    ).fetchone()
    if seeded is None:
        return None
    rows = conn.execute(
        "SELECT body FROM threshold_rules WHERE hospital_id = ? ORDER BY rule_id", (hospital_id,)
    ).fetchall()
    return [ThresholdRule.model_validate_json(row[0]) for row in rows]


def _seed(conn: sqlite3.Connection, hospital_id: str) -> list[ThresholdRule]:
    found = _rules(conn, hospital_id)
    if found is not None:
        return found  # seeded meanwhile
    conn.execute("INSERT INTO threshold_rules_seeded (hospital_id) VALUES (?)", (hospital_id,))
    rules = default_rules(hospital_id)
    conn.executemany(
        "INSERT OR IGNORE INTO threshold_rules (hospital_id, rule_id, body) VALUES (?, ?, ?)",
        [(hospital_id, r.rule_id, r.model_dump_json(by_alias=True)) for r in rules],
    )
    return sorted(rules, key=lambda r: r.rule_id)


class SqliteVitalsStore:
    def __init__(self, store: SqliteAlertStore) -> None:
        self._store = store

    async def close(self) -> None:
        """Nothing of its own to close: the alert store owns the connections."""

    async def _write(self, step: Callable[[sqlite3.Connection], R]) -> R:
        return cast(R, await self._store.write_step(step))

    async def _read(self, fn: Callable[[sqlite3.Connection], R]) -> R:
        return await run_on_thread(self._store.read_connection(), fn)

    async def record(self, write: ReportWrite) -> DeviceChange:
        return await self._write(functools.partial(_record, write=write))

    async def latest(
        self, hospital_id: str, patient_id: str | None, kinds: Sequence[str] | None
    ) -> list[StoredReading]:
        sql = (
            "SELECT patient_id, device_id, kind, value, measured_ts, 0 FROM vitals_latest "
            "WHERE hospital_id = ?"
        )
        args: list[Any] = [hospital_id]
        if patient_id is not None:
            sql += " AND patient_id = ?"
            args.append(patient_id)
        if kinds is not None:
            sql += f" AND kind IN ({', '.join('?' * len(kinds))})"
            args.extend(kinds)
        sql += " ORDER BY patient_id, kind"

        def read(conn: sqlite3.Connection) -> list[StoredReading]:
            return [_reading(row) for row in conn.execute(sql, args)]

        return await self._read(read)

    async def history(
        self,
        hospital_id: str,
        patient_id: str,
        kind: str | None,
        since_ts: float | None,
        limit: int,
        cursor: Cursor | None,
    ) -> tuple[list[StoredReading], Cursor | None]:
        sql = (
            "SELECT patient_id, device_id, kind, value, measured_ts, n FROM vitals_readings "
            "WHERE hospital_id = ? AND patient_id = ?"
        )
        args: list[Any] = [hospital_id, patient_id]
        if kind is not None:
            sql += " AND kind = ?"
            args.append(kind)
        if since_ts is not None:
            sql += " AND measured_ts >= ?"
            args.append(since_ts)
        if cursor is not None:
            sql += " AND (measured_ts < ? OR (measured_ts = ? AND n < ?))"
            args.extend([cursor[0], cursor[0], cursor[1]])
        sql += " ORDER BY measured_ts DESC, n DESC LIMIT ?"
        args.append(limit + 1)

        def read(conn: sqlite3.Connection) -> list[StoredReading]:
            return [_reading(row) for row in conn.execute(sql, args)]

        items = await self._read(read)
        if len(items) <= limit:
            return items, None
        last = items[limit - 1]
        return items[:limit], (last.measured_ts, last.n)

    async def report_status(self, write: StatusWrite) -> DeviceChange:
        return await self._write(functools.partial(_report_status, write=write))

    async def devices(self, hospital_id: str) -> list[DeviceRecord]:
        def read(conn: sqlite3.Connection) -> list[DeviceRecord]:
            rows = conn.execute(
                SELECT_DEVICES + "FROM devices WHERE hospital_id = ? ORDER BY device_id",
                (hospital_id,),
            )
            return [_device(row) for row in rows]

        return await self._read(read)

    async def silent_devices(self, seen_before: float) -> list[DeviceRecord]:
        def read(conn: sqlite3.Connection) -> list[DeviceRecord]:
            rows = conn.execute(
                SELECT_DEVICES + "FROM devices WHERE patient_id IS NOT NULL "
                "AND last_seen_ts < ? AND status NOT IN ('offline', 'maintenance')",
                (seen_before,),
            )
            return [_device(row) for row in rows]

        return await self._read(read)

    async def mark_silent(self, device: DeviceRecord, now: float) -> DeviceRecord | None:
        won = await self._write(functools.partial(_mark_silent, device=device, now=now))
        return silenced(device, now) if won else None

    async def rules(self, hospital_id: str) -> list[ThresholdRule]:
        found = await self._read(functools.partial(_rules, hospital_id=hospital_id))
        if found is not None:
            return found
        return await self._write(functools.partial(_seed, hospital_id=hospital_id))

    async def upsert_rule(self, rule: ThresholdRule) -> ThresholdRule:
        await self.rules(rule.hospital_id)  # the defaults first: they must not come back later

        def write(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO threshold_rules (hospital_id, rule_id, body) VALUES (?, ?, ?) "
                "ON CONFLICT(hospital_id, rule_id) DO UPDATE SET body = excluded.body",
                (rule.hospital_id, rule.rule_id, rule.model_dump_json(by_alias=True)),
            )

        await self._write(write)
        return rule

    async def delete_rule(self, hospital_id: str, rule_id: str) -> bool:
        await self.rules(hospital_id)

        def write(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                "DELETE FROM threshold_rules WHERE hospital_id = ? AND rule_id = ?",
                (hospital_id, rule_id),
            )
            return cur.rowcount == 1

        return await self._write(write)

    async def episode(self, hospital_id: str, patient_id: str, alert_type: str) -> tuple[str, int]:
        def read(conn: sqlite3.Connection) -> tuple[str, int]:
            row = conn.execute(
                "SELECT alert_id, episode FROM rule_episodes "
                "WHERE hospital_id = ? AND patient_id = ? AND alert_type = ?",
                (hospital_id, patient_id, alert_type),
            ).fetchone()
            return ("", 0) if row is None else (str(row[0]), int(row[1]))

        return await self._read(read)

    async def set_episode(
        self, hospital_id: str, patient_id: str, alert_type: str, alert_id: str, episode: int
    ) -> None:
        def write(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO rule_episodes (hospital_id, patient_id, alert_type, alert_id, "
                "episode) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT(hospital_id, patient_id, alert_type) DO UPDATE SET "
                "alert_id = excluded.alert_id, episode = excluded.episode "
                "WHERE excluded.episode >= rule_episodes.episode",
                (hospital_id, patient_id, alert_type, alert_id, episode),
            )

        await self._write(write)

    async def prune(self, before_ts: float) -> int:
        def write(conn: sqlite3.Connection) -> int:
            removed = conn.execute(
                "DELETE FROM vitals_readings WHERE measured_ts < ?", (before_ts,)
            ).rowcount
            conn.execute("DELETE FROM vitals_latest WHERE measured_ts < ?", (before_ts,))
            return int(removed)

        return await self._write(write)

    # --- the device event log (services/device_events.py) ---------------------------------

    async def device_events_after(
        self, hospital_id: str, after_seq: int, limit: int
    ) -> list[StoredDeviceEvent]:
        return await self._read(
            functools.partial(
                device_events.events_after_sqlite,
                hospital_id=hospital_id,
                after_seq=after_seq,
                limit=limit,
            )
        )

    async def newest_device_event(self, hospital_id: str) -> int:
        return await self._read(
            functools.partial(device_events.newest_sqlite, hospital_id=hospital_id)
        )

    async def prune_device_events(self, before_ts: float) -> int:
        return await self._write(functools.partial(device_events.prune_sqlite, before_ts=before_ts))
