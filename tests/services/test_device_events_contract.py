"""The device event log's contract on both stores (the `backend` fixture): an event only when a
device's status or patient changes (status reports, vitals reports, the silence mark), in the
device write's transaction, ordered per hospital with ids apart from alert event ids, and
pruned like the alert event log."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from typing import Any

import orjson
import pytest

from services.device_events import EVENT_TYPE, StoredDeviceEvent
from services.store import RETAINED_EVENTS, format_event_id
from services.vitals_store import ReportWrite, StatusWrite, StoredReading, make_vitals_store
from tests.services.stores import Backend, SqliteBackend, open_store

T0 = 1_800_000_000.0


def status(
    device: str = "d1",
    state: str = "online",
    patient: str | None = "p1",
    now: float = T0,
    battery: int | None = None,
    hospital: str = "h1",
) -> StatusWrite:
    return StatusWrite(hospital, device, state, patient, battery, None, now)  # type: ignore[arg-type]


def report(device: str = "d1", patient: str = "p1", now: float = T0) -> ReportWrite:
    reading = StoredReading(patient, device, "heart_rate", 70.0, now)
    return ReportWrite("h1", patient, device, [reading], now)


def bodies(events: list[StoredDeviceEvent]) -> list[dict[str, Any]]:
    return [orjson.loads(e.payload) for e in events]


def commit(backend: Backend, sql: str, *args: Any) -> None:
    """A write of the test's own, committed through a connection of its own."""
    if isinstance(backend, SqliteBackend):
        with contextlib.closing(sqlite3.connect(backend.path)) as db:
            db.execute(sql, args)
            db.commit()
    else:
        backend.query(sql, *args)


async def test_only_a_change_of_status_or_patient_is_logged(backend: Backend) -> None:
    async with open_store(backend) as store:
        v = make_vitals_store(store)
        assert await v.newest_device_event("h1") == 0
        await v.report_status(status(now=T0))  # new: logged
        await v.report_status(status(now=T0 + 1, battery=40))  # battery only: not logged
        await v.report_status(status(state="low_battery", now=T0 + 2))
        await v.report_status(status(state="low_battery", patient="p2", now=T0 + 3))
        await v.record(report(patient="p2", now=T0 + 4))  # seen only: not logged
        await v.report_status(status(device="d9", hospital="h2", now=T0 + 5))
        events = await v.device_events_after("h1", 0, 100)
        assert [e.seq for e in events] == [1, 2, 3]
        assert [e.id for e in events] == ["dev-" + format_event_id(n) for n in (1, 2, 3)]
        assert all(not e.id.isdigit() for e in events)  # never taken for an alert event id
        got = bodies(events)
        assert [b["id"] for b in got] == [e.id for e in events]
        assert {b["type"] for b in got} == {EVENT_TYPE}
        assert {b["hospitalId"] for b in got} == {"h1"}
        assert [(b["device"]["status"], b["device"]["patientId"]) for b in got] == [
            ("online", "p1"),
            ("low_battery", "p1"),
            ("low_battery", "p2"),
        ]
        assert got[1]["device"]["battery"] == 40
        assert got[2]["occurredAt"] == got[2]["device"]["updatedAt"]
        assert [e.seq for e in await v.device_events_after("h1", 2, 100)] == [3]
        assert [e.seq for e in await v.device_events_after("h1", 0, 2)] == [1, 2]
        assert await v.newest_device_event("h1") == 3
        assert [e.seq for e in await v.device_events_after("h2", 0, 100)] == [1]


async def test_a_vitals_report_bringing_a_device_back_is_logged(backend: Backend) -> None:
    async with open_store(backend) as store:
        v = make_vitals_store(store)
        await v.report_status(status(state="offline", now=T0))
        await v.record(report(now=T0 + 1))  # offline -> online
        await v.record(report(now=T0 + 2))  # nothing changes
        await v.record(report(patient="p3", now=T0 + 3))  # another patient
        got = bodies(await v.device_events_after("h1", 0, 100))
        assert [(b["device"]["status"], b["device"]["patientId"]) for b in got] == [
            ("offline", "p1"),
            ("online", "p1"),
            ("online", "p3"),
        ]


async def test_the_silence_mark_is_logged_once(backend: Backend) -> None:
    async with open_store(backend) as store:
        v = make_vitals_store(store)
        await v.report_status(status(now=T0))
        [silent] = await v.silent_devices(T0 + 30)
        marked = await asyncio.gather(
            v.mark_silent(silent, T0 + 60), v.mark_silent(silent, T0 + 60)
        )
        assert sum(m is not None for m in marked) == 1
        got = bodies(await v.device_events_after("h1", 1, 100))
        assert [b["device"]["status"] for b in got] == ["offline"]


async def test_the_event_commits_with_the_device_write_or_not_at_all(backend: Backend) -> None:
    async with open_store(backend) as store:
        v = make_vitals_store(store)
        await v.report_status(status(now=T0))
        # Position 2 is taken behind the store's back: the next event cannot be written.
        commit(
            backend,
            "INSERT INTO device_events (hospital_id, seq, occurred_ts, payload) VALUES (?, ?, ?, ?)",
            "h1",
            2,
            T0,
            b"{}",
        )
        with pytest.raises(Exception):
            await v.report_status(status(state="offline", now=T0 + 1))
        [device] = await v.devices("h1")
        assert device.status == "online"  # the device write went with the event
        assert await v.newest_device_event("h1") == 1  # and so did the position
        commit(backend, "DELETE FROM device_events WHERE seq = ?", 2)
        await v.report_status(status(state="offline", now=T0 + 2))
        [device] = await v.devices("h1")
        assert device.status == "offline"
        got = bodies(await v.device_events_after("h1", 0, 100))
        assert [b["device"]["status"] for b in got] == ["online", "offline"]


async def test_concurrent_changes_get_distinct_consecutive_positions(backend: Backend) -> None:
    async with open_store(backend) as store:
        v = make_vitals_store(store)
        await asyncio.gather(*(v.report_status(status(device=f"d{i}")) for i in range(20)))
        events = await v.device_events_after("h1", 0, 100)
        assert [e.seq for e in events] == list(range(1, 21))
        assert sorted(b["device"]["deviceId"] for b in bodies(events)) == sorted(
            f"d{i}" for i in range(20)
        )


async def test_pruning_keeps_the_recent_and_the_newest_and_never_reuses_a_position(
    backend: Backend,
) -> None:
    async with open_store(backend) as store:
        v = make_vitals_store(store)
        total = RETAINED_EVENTS + 5
        for i in range(total):
            state = "online" if i % 2 == 0 else "low_battery"
            await v.report_status(status(state=state, now=T0 + i))
        # Older than the cut-off: positions 1..3; beyond the newest RETAINED_EVENTS: 1..5.
        assert await v.prune_device_events(T0 + 3) == 3
        events = await v.device_events_after("h1", 0, 1000)
        assert [e.seq for e in events] == list(range(4, total + 1))
        assert await v.prune_device_events(T0 + 10_000) == 2  # the newest stay, however old
        assert len(await v.device_events_after("h1", 0, 1000)) == RETAINED_EVENTS
        await v.report_status(status(state="offline", now=T0 + total))
        assert await v.newest_device_event("h1") == total + 1
