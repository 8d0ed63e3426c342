"""Conflated live streams (services/vitals_live.py) without sockets: the snapshot merged with
what arrived while it was read, older values dropped, newest-only while the connection is
backed up, at most max_rate_hz flushes, and the hub's filters."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import orjson

from rpc.errors import RpcError
from services.vitals_live import (
    BACKLOG_LIMIT_BYTES,
    BACKLOG_RETRY_S,
    LiveHub,
    VitalsChanged,
    vitals_message,
)
from services.vitals_store import StoredReading
from tests.polling import until

T0 = 1_700_000_000.0


class Sink:
    """An EventSink with the transport's backlog probe (what the WebSocket outbound has)."""

    def __init__(self) -> None:
        self.frames: list[dict[str, Any]] = []
        self.backed_up = 0
        self.session = SimpleNamespace(transport=SimpleNamespace(backlog=lambda: self.backed_up))

    def event(self, event_id: str | None, payload: bytes) -> None:
        assert event_id is None  # vitals carry no event id: they are not resumable
        self.frames.append(orjson.loads(payload))

    def end(self, error: RpcError | None = None) -> None:
        raise AssertionError("a vitals stream does not end by itself")


def hr(value: float, at: float, patient: str = "p1") -> StoredReading:
    return StoredReading(patient, "mon-1", "heart_rate", value, at)


def values(frames: list[dict[str, Any]]) -> list[float]:
    return [r["value"] for f in frames for r in f["readings"]]


def message(*readings: StoredReading) -> VitalsChanged:
    return vitals_message("h1", readings[0].patient_id, "mon-1", readings)


async def test_snapshot_then_changes_with_older_values_dropped() -> None:
    hub = LiveHub()
    read = asyncio.Event()

    async def snapshot() -> list[StoredReading]:
        await read.wait()
        return [hr(60, T0), StoredReading("p1", "mon-1", "spo2", 97, T0)]

    stream = hub.vitals_stream("h1", None, lambda r: True, 1000, snapshot)
    sink = Sink()
    opening = asyncio.create_task(stream.start(sink))
    hub.vitals_changed(message(hr(65, T0 + 1)))  # while the snapshot is being read
    read.set()
    await opening
    (first,) = sink.frames
    assert sorted((r["kind"], r["value"]) for r in first["readings"]) == [
        ("heart_rate", 65),
        ("spo2", 97),
    ]
    hub.vitals_changed(message(hr(50, T0 - 10)))  # older than what was sent: dropped
    hub.vitals_changed(message(hr(70, T0 + 2)))
    await until(lambda: len(sink.frames) == 2, "the change")
    assert values(sink.frames[1:]) == [70]
    stream.close()
    assert hub.subscribers() == 0


async def test_a_backed_up_connection_gets_only_the_newest_value() -> None:
    hub = LiveHub()

    async def snapshot() -> list[StoredReading]:
        return []

    stream = hub.vitals_stream("h1", None, lambda r: True, 1000, snapshot)
    sink = Sink()
    await stream.start(sink)
    sink.backed_up = BACKLOG_LIMIT_BYTES + 1
    for i in range(50):
        hub.vitals_changed(message(hr(60 + i, T0 + i)))
        await asyncio.sleep(0)
    await asyncio.sleep(3 * BACKLOG_RETRY_S)  # several retries, each finding it backed up
    assert sink.frames == []  # nothing queued behind the backlog
    sink.backed_up = 0
    await until(lambda: len(sink.frames) == 1, "the catch-up update")
    assert values(sink.frames) == [109]


async def test_the_rate_limit_conflates_a_burst() -> None:
    hub = LiveHub()

    async def snapshot() -> list[StoredReading]:
        return []

    stream = hub.vitals_stream("h1", None, lambda r: True, 5, snapshot)  # one flush per 200 ms
    sink = Sink()
    await stream.start(sink)
    for i in range(50):
        hub.vitals_changed(message(hr(60 + i, T0 + i)))
        await asyncio.sleep(0.002)
    await until(lambda: bool(sink.frames) and values(sink.frames)[-1] == 109, "the last value")
    assert len(sink.frames) <= 3
    stream.close()


async def test_filters_and_hospitals_are_kept_apart() -> None:
    hub = LiveHub()

    async def snapshot() -> list[StoredReading]:
        return []

    stream = hub.vitals_stream("h1", "p2", lambda r: True, 1000, snapshot)
    sink = Sink()
    await stream.start(sink)
    # One patient's subscriber hears at once that nothing is known of them yet.
    assert sink.frames == [{"patientId": "p2", "readings": []}]
    sink.frames.clear()
    hub.vitals_changed(message(hr(70, T0)))  # another patient
    hub.vitals_changed(vitals_message("h2", "p2", "mon-9", [hr(71, T0, "p2")]))  # other hospital
    hub.vitals_changed(message(hr(72, T0, "p2")))
    await until(lambda: len(sink.frames) == 1, "the matching reading")
    assert sink.frames[0]["patientId"] == "p2"
    assert values(sink.frames) == [72]


def test_a_report_is_broadcast_as_the_newest_reading_of_each_kind() -> None:
    msg = vitals_message("h1", "p1", "mon-1", [hr(70, T0 + 1), hr(60, T0), hr(65, T0 + 0.5)])
    assert msg.readings == [("heart_rate", 70, T0 + 1)]
