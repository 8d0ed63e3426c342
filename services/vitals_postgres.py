"""The vitals store on PostgreSQL, sharing the alert store's pool (`PostgresAlertStore.pool`).

Reports are group-committed like alert changes: the reports waiting when the writer is free
go to the database together in one transaction (services/write_queue.py): every reading in one
`executemany`, the patients' latest values in another, and the devices' rows locked (`FOR
UPDATE`, in one order, so two nodes touching the same devices serialise on them rather than
deadlock) and written once each. A report is never split: it commits whole with its batch, or
its caller gets the error. Calls are tried once more on a fresh connection when
the first turns out to be dead (postgres_pool.repeatable). Marking a silent device offline is a
conditional UPDATE: of all the nodes that noticed the silence, the one whose UPDATE matched
raises the alert.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from schemas.devices import ThresholdRule
from services import device_events
from services.device_events import StoredDeviceEvent
from services.postgres_pool import repeatable
from services.store_postgres import PostgresAlertStore
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
from services.write_queue import shut_out, write_in_batches

if TYPE_CHECKING:
    from services.postgres_pool import Connection

R = TypeVar("R")

SELECT_DEVICES = (
    "SELECT hospital_id, device_id, patient_id, status, battery, detail, last_seen_ts, updated_ts "
)
UPSERT_DEVICE = """
INSERT INTO devices (
    hospital_id, device_id, patient_id, status, battery, detail, last_seen_ts, updated_ts
) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (hospital_id, device_id) DO UPDATE SET
    patient_id = excluded.patient_id, status = excluded.status, battery = excluded.battery,
    detail = excluded.detail, last_seen_ts = excluded.last_seen_ts,
    updated_ts = excluded.updated_ts
"""
SELECT_DEVICE = SELECT_DEVICES + "FROM devices WHERE hospital_id = $1 AND device_id = $2 FOR UPDATE"
LOCK_DEVICES = """
SELECT hospital_id, device_id, patient_id, status, battery, detail, last_seen_ts, updated_ts
FROM devices
WHERE (hospital_id, device_id) IN (SELECT h, d FROM unnest($1::text[], $2::text[]) AS k(h, d))
ORDER BY hospital_id, device_id
FOR UPDATE
"""
INSERT_READING = (
    "INSERT INTO vitals_readings (hospital_id, patient_id, device_id, kind, value, measured_ts) "
    "VALUES ($1, $2, $3, $4, $5, $6)"
)
UPSERT_LATEST = """
INSERT INTO vitals_latest (hospital_id, patient_id, kind, device_id, value, measured_ts)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (hospital_id, patient_id, kind) DO UPDATE SET
    device_id = excluded.device_id, value = excluded.value, measured_ts = excluded.measured_ts
WHERE excluded.measured_ts >= vitals_latest.measured_ts
"""
SELECT_RULES = "SELECT body FROM threshold_rules WHERE hospital_id = $1 ORDER BY rule_id"


def _device(row: Any) -> DeviceRecord:
    return DeviceRecord(
        str(row[0]), str(row[1]), row[2], row[3], row[4], row[5], float(row[6]), float(row[7])
    )


def _device_args(d: DeviceRecord) -> tuple[Any, ...]:
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


def _reading(row: Any) -> StoredReading:
    return StoredReading(
        str(row[0]), str(row[1]), row[2], float(row[3]), float(row[4]), int(row[5])
    )


def _new_future() -> asyncio.Future[Any]:
    return asyncio.get_running_loop().create_future()


@dataclass
class _Report:
    write: ReportWrite
    future: asyncio.Future[Any] = field(default_factory=_new_future)


async def _write_reports(conn: Connection, writes: list[ReportWrite]) -> list[DeviceChange]:
    """Inside a transaction: every report's readings, latest values and device."""
    rows = [
        (w.hospital_id, w.patient_id, r.device_id, r.kind, r.value, r.measured_ts)
        for w in writes
        for r in w.readings
    ]
    await conn.executemany(INSERT_READING, rows)
    await conn.executemany(UPSERT_LATEST, [(r[0], r[1], r[3], r[2], r[4], r[5]) for r in rows])
    keys = sorted({(w.hospital_id, w.device_id) for w in writes})
    locked = await conn.fetch(LOCK_DEVICES, [k[0] for k in keys], [k[1] for k in keys])
    current: dict[tuple[str, str], DeviceRecord] = {}
    for row in locked:
        device = _device(row)
        current[(device.hospital_id, device.device_id)] = device
    changes = []
    for w in writes:
        key = (w.hospital_id, w.device_id)
        previous = current.get(key)
        current[key] = touched(previous, w)
        changes.append(DeviceChange(current[key], previous))
    await conn.executemany(UPSERT_DEVICE, [_device_args(current[k]) for k in keys])
    changed = [c.device for c in changes if device_events.is_change(c.previous, c.device)]
    if changed:
        await device_events.append_postgres(conn, changed)
    return changes


class PostgresVitalsStore:
    def __init__(self, store: PostgresAlertStore) -> None:
        self._store = store
        self._queue: asyncio.Queue[_Report] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
            self._writer = None
        while not self._queue.empty():
            shut_out(self._queue.get_nowait())

    async def _call(self, call: Callable[[Connection], Awaitable[R]]) -> R:
        return await repeatable(self._store.pool, call)

    async def _transaction(self, call: Callable[[Connection], Awaitable[R]]) -> R:
        async def run(conn: Connection) -> R:
            async with conn.transaction():
                return await call(conn)

        return await self._call(run)

    async def record(self, write: ReportWrite) -> DeviceChange:
        if self._writer is None:
            self._writer = asyncio.create_task(
                write_in_batches(self._queue, self._record_batch), name="vitals-writer"
            )
        pending = _Report(write)
        self._queue.put_nowait(pending)
        change: DeviceChange = await pending.future
        return change

    async def _record_batch(self, batch: list[_Report]) -> None:
        waiting = [p for p in batch if not p.future.done()]  # a caller gone stores nothing
        if not waiting:
            return
        writes = [p.write for p in waiting]
        try:
            changes = await self._transaction(lambda conn: _write_reports(conn, writes))
        except Exception as exc:
            for pending in waiting:
                if not pending.future.done():
                    pending.future.set_exception(exc)
            return
        for pending, change in zip(waiting, changes, strict=True):
            if not pending.future.done():
                pending.future.set_result(change)

    async def latest(
        self, hospital_id: str, patient_id: str | None, kinds: Sequence[str] | None
    ) -> list[StoredReading]:
        sql = (
            "SELECT patient_id, device_id, kind, value, measured_ts, 0 FROM vitals_latest "
            "WHERE hospital_id = $1"
        )
        args: list[Any] = [hospital_id]
        if patient_id is not None:
            args.append(patient_id)
            sql += f" AND patient_id = ${len(args)}"
        if kinds is not None:
            args.append(list(kinds))
            sql += f" AND kind = ANY(${len(args)}::text[])"
        sql += " ORDER BY patient_id, kind"
        rows = await self._call(lambda conn: conn.fetch(sql, *args))
        return [_reading(row) for row in rows]

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
            "WHERE hospital_id = $1 AND patient_id = $2"
        )
        args: list[Any] = [hospital_id, patient_id]
        if kind is not None:
            args.append(kind)
            sql += f" AND kind = ${len(args)}"
        if since_ts is not None:
            args.append(since_ts)
            sql += f" AND measured_ts >= ${len(args)}"
        if cursor is not None:
            args.extend([cursor[0], cursor[1]])
            ts, n = f"${len(args) - 1}", f"${len(args)}"
            sql += f" AND (measured_ts < {ts} OR (measured_ts = {ts} AND n < {n}))"
        args.append(limit + 1)
        sql += f" ORDER BY measured_ts DESC, n DESC LIMIT ${len(args)}"
        rows = await self._call(lambda conn: conn.fetch(sql, *args))
        items = [_reading(row) for row in rows]
        if len(items) <= limit:
            return items, None
        last = items[limit - 1]
        return items[:limit], (last.measured_ts, last.n)

    async def report_status(self, write: StatusWrite) -> DeviceChange:
        async def run(conn: Connection) -> DeviceChange:
            row = await conn.fetchrow(SELECT_DEVICE, write.hospital_id, write.device_id)
            previous = None if row is None else _device(row)
            device = reported(previous, write)
            await conn.execute(UPSERT_DEVICE, *_device_args(device))
            if device_events.is_change(previous, device):
                await device_events.append_postgres(conn, [device])
            return DeviceChange(device, previous)

        return await self._transaction(run)

    async def devices(self, hospital_id: str) -> list[DeviceRecord]:
        sql = SELECT_DEVICES + "FROM devices WHERE hospital_id = $1 ORDER BY device_id"
        rows = await self._call(lambda conn: conn.fetch(sql, hospital_id))
        return [_device(row) for row in rows]

    async def silent_devices(self, seen_before: float) -> list[DeviceRecord]:
        sql = (
            SELECT_DEVICES + "FROM devices WHERE patient_id IS NOT NULL "
            "AND last_seen_ts < $1 AND status NOT IN ('offline', 'maintenance')"
        )
        rows = await self._call(lambda conn: conn.fetch(sql, seen_before))
        return [_device(row) for row in rows]

    async def mark_silent(self, device: DeviceRecord, now: float) -> DeviceRecord | None:
        sql = (
            "UPDATE devices SET status = 'offline', updated_ts = $1 WHERE hospital_id = $2 "
            "AND device_id = $3 AND status = $4 AND last_seen_ts = $5 AND updated_ts = $6"
        )
        args = (
            now,
            device.hospital_id,
            device.device_id,
            device.status,
            device.last_seen_ts,
            device.updated_ts,
        )
        marked = silenced(device, now)

        async def run(conn: Connection) -> bool:
            # The event in the UPDATE's transaction, only when the UPDATE matched.
            if await conn.execute(sql, *args) != "UPDATE 1":
                return False
            await device_events.append_postgres(conn, [marked])
            return True

        return marked if await self._transaction(run) else None

    async def rules(self, hospital_id: str) -> list[ThresholdRule]:
        async def run(conn: Connection) -> list[ThresholdRule]:
            seeded = await conn.fetchval(
                "SELECT 1 FROM threshold_rules_seeded WHERE hospital_id = $1", hospital_id
            )
            if seeded is None:
                await self._seed(conn, hospital_id)
            rows = await conn.fetch(SELECT_RULES, hospital_id)
            return [ThresholdRule.model_validate_json(row[0]) for row in rows]

        return await self._transaction(run)

    @staticmethod
    async def _seed(conn: Connection, hospital_id: str) -> None:
        """Store the defaults once: the marker row decides between two nodes seeding at once
        (the loser's insert does nothing, and it then reads the winner's rules)."""
        status = await conn.execute(
            "INSERT INTO threshold_rules_seeded (hospital_id) VALUES ($1) ON CONFLICT DO NOTHING",
            hospital_id,
        )
        if status != "INSERT 0 1":
            return
        await conn.executemany(
            "INSERT INTO threshold_rules (hospital_id, rule_id, body) VALUES ($1, $2, $3) "
            "ON CONFLICT DO NOTHING",
            [
                (hospital_id, r.rule_id, r.model_dump_json(by_alias=True))
                for r in default_rules(hospital_id)
            ],
        )

    async def upsert_rule(self, rule: ThresholdRule) -> ThresholdRule:
        await self.rules(rule.hospital_id)  # the defaults first: they must not come back later
        sql = (
            "INSERT INTO threshold_rules (hospital_id, rule_id, body) VALUES ($1, $2, $3) "
            "ON CONFLICT (hospital_id, rule_id) DO UPDATE SET body = excluded.body"
        )
        body = rule.model_dump_json(by_alias=True)
        await self._call(lambda conn: conn.execute(sql, rule.hospital_id, rule.rule_id, body))
        return rule

    async def delete_rule(self, hospital_id: str, rule_id: str) -> bool:
        await self.rules(hospital_id)
        sql = "DELETE FROM threshold_rules WHERE hospital_id = $1 AND rule_id = $2"
        result = await self._call(lambda conn: conn.execute(sql, hospital_id, rule_id))
        return bool(result == "DELETE 1")

    async def episode(self, hospital_id: str, patient_id: str, alert_type: str) -> tuple[str, int]:
        sql = (
            "SELECT alert_id, episode FROM rule_episodes "
            "WHERE hospital_id = $1 AND patient_id = $2 AND alert_type = $3"
        )
        row = await self._call(lambda conn: conn.fetchrow(sql, hospital_id, patient_id, alert_type))
        return ("", 0) if row is None else (str(row[0]), int(row[1]))

    async def set_episode(
        self, hospital_id: str, patient_id: str, alert_type: str, alert_id: str, episode: int
    ) -> None:
        sql = (
            "INSERT INTO rule_episodes (hospital_id, patient_id, alert_type, alert_id, episode) "
            "VALUES ($1, $2, $3, $4, $5) "
            "ON CONFLICT (hospital_id, patient_id, alert_type) DO UPDATE SET "
            "alert_id = excluded.alert_id, episode = excluded.episode "
            "WHERE excluded.episode >= rule_episodes.episode"
        )
        args = (hospital_id, patient_id, alert_type, alert_id, episode)
        await self._call(lambda conn: conn.execute(sql, *args))

    async def prune(self, before_ts: float) -> int:
        async def run(conn: Connection) -> int:
            result = await conn.execute(
                "DELETE FROM vitals_readings WHERE measured_ts < $1", before_ts
            )
            await conn.execute("DELETE FROM vitals_latest WHERE measured_ts < $1", before_ts)
            return int(str(result).rsplit(" ", 1)[-1])

        return await self._transaction(run)

    # --- the device event log (services/device_events.py) ---------------------------------

    async def device_events_after(
        self, hospital_id: str, after_seq: int, limit: int
    ) -> list[StoredDeviceEvent]:
        return await self._call(
            lambda conn: device_events.events_after_postgres(conn, hospital_id, after_seq, limit)
        )

    async def newest_device_event(self, hospital_id: str) -> int:
        return await self._call(lambda conn: device_events.newest_postgres(conn, hospital_id))

    async def prune_device_events(self, before_ts: float) -> int:
        return await self._transaction(lambda conn: device_events.prune_postgres(conn, before_ts))
