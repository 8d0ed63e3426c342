"""Live vitals and device status: CONFLATED streams, deliberately unlike the alert stream.

The alert stream (services/subscriptions.py) never drops an event: each is a change in a
clinical record that someone must act on, so it is ordered, numbered, replayable by
`lastEventId`, and a subscriber that falls too far behind is disconnected to resume from the
log rather than be handed a gap. Vitals are the opposite kind of data: a monitor's heart rate
of two seconds ago is worth nothing once the current one is known, and a ward screen that fell
behind must show the present, not replay the past at its own pace while the patient's real
state moves on. So a vitals subscriber gets the newest value of each (patient, kind) and never
a backlog: updates are sent at most `maxRateHz` times a second, and while a connection's send
queue is backed up nothing more is queued for it; what changed meanwhile is merged (newest
wins, by measuredAt) and sent in one update when it catches up. Vitals carry no event id and
cannot be resumed: a new subscription starts with the snapshot of the latest values.

Device status (`devices.subscribeToStatus`) is conflated the same way, per device.

Cluster: every report is broadcast to every node (`VitalsChanged` through ClusterState.publish,
which runs this node's handlers at once), and each node's hub fans it out to its own
subscribers. A lost broadcast costs a subscriber one stale value until the next reading; the
store keeps the latest values for new subscribers.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable, Iterable
from typing import Any, Generic, TypeVar

import orjson

from rpc.cluster import ClusterMessage
from rpc.stream import EventSink, PushStream
from services.vitals_store import DeviceRecord, StoredReading

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

# While a connection holds more than this many bytes not yet written, it gets nothing new:
# its pending values are merged until it drains.
BACKLOG_LIMIT_BYTES = 64 * 1024
BACKLOG_RETRY_S = 0.05


class VitalsChanged(ClusterMessage):
    """A report's readings, for every node's live subscribers."""

    kind = "vitals.changed"
    hospital_id: str
    patient_id: str
    device_id: str
    readings: list[tuple[str, float, float]]  # (kind, value, measured_ts)


class DeviceChanged(ClusterMessage):
    kind = "devices.changed"
    hospital_id: str
    device_id: str
    patient_id: str | None
    status: str
    battery: int | None
    detail: str | None
    last_seen_ts: float
    updated_ts: float


def _backlog_probe(sink: EventSink) -> Callable[[], int]:
    """How many bytes the sink's connection has not yet written, when its transport can say
    (the WebSocket and SSE outbound queues can); 0 otherwise."""
    transport = getattr(getattr(sink, "session", None), "transport", None)
    outbound = getattr(transport, "out", transport)
    probe = getattr(outbound, "backlog", None)
    if callable(probe):
        return lambda: int(probe())
    return lambda: 0


class ConflatedStream(PushStream, Generic[K, V]):
    """Newest value per key, at most `max_rate_hz` flushes a second, nothing queued while the
    connection is backed up. Items carry an order (measuredAt, or a device's updatedAt): an
    item older than what was already seen for its key is dropped.

    Live from construction (the hub holds it before the snapshot is read); `_open` sends the
    snapshot merged with anything newer heard meanwhile, at once (it does not count against
    the rate), then changes."""

    def __init__(
        self,
        max_rate_hz: float,
        snapshot: Callable[[], Awaitable[list[V]]],
        key: Callable[[V], K],
        order: Callable[[V], float],
        render: Callable[[list[V]], list[bytes]],
        detach: Callable[[ConflatedStream[K, V]], None],
        clock: Callable[[], float] = time.monotonic,
        empty: tuple[bytes, ...] = (),
    ) -> None:
        super().__init__()
        self._empty = empty  # the snapshot's frames when nothing is known yet
        self._interval = 1.0 / max_rate_hz
        self._snapshot = snapshot
        self._key = key
        self._order = order
        self._render = render
        self._detach = detach
        self._clock = clock
        self._pending: dict[K, V] = {}
        self._seen: dict[K, float] = {}
        self._live = False
        self._last_flush = -1e18
        self._timer: asyncio.TimerHandle | None = None
        self._backlog: Callable[[], int] = lambda: 0
        self.flushes = 0  # updates sent after the snapshot (tests and benchmarks read it)

    def offer(self, items: Iterable[V]) -> None:
        """New values (synchronous, cheap: a dict update per item)."""
        if self.closed:
            return
        fresh = False
        for item in items:
            key, order = self._key(item), self._order(item)
            if order < self._seen.get(key, -1e18):
                continue
            self._seen[key] = order
            self._pending[key] = item
            fresh = True
        if fresh and self._live:
            self._schedule()

    async def _open(self, sink: EventSink) -> None:
        self._backlog = _backlog_probe(sink)
        known = await self._snapshot()
        merged: dict[K, V] = {}
        for item in known:
            key, order = self._key(item), self._order(item)
            if order >= self._seen.get(key, -1e18):
                merged[key] = item
                self._seen[key] = order
        merged.update(self._pending)  # heard while the snapshot was read: newer or equal
        self._pending.clear()
        if self.closed:
            return
        for frame in self._render(list(merged.values())) or self._empty:
            sink.event(None, frame)
        self._live = True

    def _schedule(self) -> None:
        if self._timer is not None or self.closed:
            return
        wait = max(0.0, self._last_flush + self._interval - self._clock())
        self._timer = asyncio.get_running_loop().call_later(wait, self._flush)

    def _flush(self) -> None:
        self._timer = None
        sink = self._sink
        if self.closed or sink is None or not self._pending:
            return
        if self._backlog() > BACKLOG_LIMIT_BYTES:
            # The connection is behind: keep merging; try again shortly.
            self._timer = asyncio.get_running_loop().call_later(BACKLOG_RETRY_S, self._flush)
            return
        items = list(self._pending.values())
        self._pending.clear()
        self._last_flush = self._clock()
        self.flushes += 1
        for frame in self._render(items):
            sink.event(None, frame)

    def _close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._pending.clear()
        self._detach(self)


VitalsStream = ConflatedStream[tuple[str, str], StoredReading]
Filter = Callable[[StoredReading], bool]
DeviceStream = ConflatedStream[str, DeviceRecord]


def render_vitals(readings: list[StoredReading]) -> list[bytes]:
    """One VitalsUpdate per patient."""
    by_patient: dict[str, list[dict[str, Any]]] = {}
    for reading in readings:
        wire = reading.wire().model_dump(mode="json", by_alias=True)
        by_patient.setdefault(reading.patient_id, []).append(wire)
    return [
        orjson.dumps({"patientId": patient, "readings": items})
        for patient, items in by_patient.items()
    ]


def render_empty(patient_id: str) -> bytes:
    return orjson.dumps({"patientId": patient_id, "readings": []})


def render_devices(devices: list[DeviceRecord]) -> list[bytes]:
    return [
        orjson.dumps(device.wire().model_dump(mode="json", by_alias=True)) for device in devices
    ]


class LiveHub:
    """This node's live vitals and device-status subscribers. Vitals subscribers are indexed
    by (hospital, patient), or by hospital for ward-wide ones, so that a report touches only
    the subscribers that may want it (a ward of bedside screens each watching one patient
    costs a dict lookup per report, not a look at every screen)."""

    def __init__(self) -> None:
        self._vitals: dict[tuple[str, str | None], dict[VitalsStream, Filter]] = {}
        self._devices: dict[str, set[DeviceStream]] = {}

    def vitals_stream(
        self,
        hospital_id: str,
        patient_id: str | None,
        accepts: Filter,
        max_rate_hz: float,
        snapshot: Callable[[], Awaitable[list[StoredReading]]],
    ) -> VitalsStream:
        """`patient_id` None: every patient of the hospital; `accepts` filters further."""
        key = (hospital_id, patient_id)

        def detach(stream: ConflatedStream[Any, Any]) -> None:
            streams = self._vitals.get(key, {})
            streams.pop(stream, None)
            if not streams:
                self._vitals.pop(key, None)

        # One patient's subscriber is told at once that nothing is known of them yet.
        empty = () if patient_id is None else (render_empty(patient_id),)
        stream: VitalsStream = ConflatedStream(
            max_rate_hz,
            snapshot,
            key=lambda r: (r.patient_id, r.kind),
            order=lambda r: r.measured_ts,
            render=render_vitals,
            detach=detach,
            empty=empty,
        )
        self._vitals.setdefault(key, {})[stream] = accepts
        return stream

    def device_stream(
        self,
        hospital_id: str,
        max_rate_hz: float,
        snapshot: Callable[[], Awaitable[list[DeviceRecord]]],
    ) -> DeviceStream:
        def detach(stream: ConflatedStream[Any, Any]) -> None:
            streams = self._devices.get(hospital_id, set())
            streams.discard(stream)
            if not streams:
                self._devices.pop(hospital_id, None)

        stream: DeviceStream = ConflatedStream(
            max_rate_hz,
            snapshot,
            key=lambda d: d.device_id,
            order=lambda d: d.updated_ts,
            render=render_devices,
            detach=detach,
        )
        self._devices.setdefault(hospital_id, set()).add(stream)
        return stream

    def subscribers(self) -> int:
        return sum(len(s) for s in self._vitals.values()) + sum(
            len(s) for s in self._devices.values()
        )

    # --- what the cluster delivers -------------------------------------------------------

    def vitals_changed(self, message: VitalsChanged) -> None:
        patient = self._vitals.get((message.hospital_id, message.patient_id))
        ward = self._vitals.get((message.hospital_id, None))
        if not patient and not ward:
            return
        readings = [
            StoredReading(message.patient_id, message.device_id, kind, value, ts)  # type: ignore[arg-type]
            for kind, value, ts in message.readings
        ]
        for streams in (patient, ward):
            for stream, accepts in tuple((streams or {}).items()):
                stream.offer([r for r in readings if accepts(r)])

    def device_changed(self, message: DeviceChanged) -> None:
        streams = self._devices.get(message.hospital_id)
        if not streams:
            return
        device = DeviceRecord(
            message.hospital_id,
            message.device_id,
            message.patient_id,
            message.status,  # type: ignore[arg-type]
            message.battery,
            message.detail,
            message.last_seen_ts,
            message.updated_ts,
        )
        for stream in tuple(streams):
            stream.offer((device,))


def vitals_message(
    hospital_id: str, patient_id: str, device_id: str, readings: Iterable[StoredReading]
) -> VitalsChanged:
    """The newest reading of each kind in a report (older ones would be conflated away)."""
    newest: dict[str, StoredReading] = {}
    for r in readings:
        if r.kind not in newest or r.measured_ts >= newest[r.kind].measured_ts:
            newest[r.kind] = r
    return VitalsChanged(
        hospital_id=hospital_id,
        patient_id=patient_id,
        device_id=device_id,
        readings=[(r.kind, r.value, r.measured_ts) for r in newest.values()],
    )


def device_message(device: DeviceRecord) -> DeviceChanged:
    return DeviceChanged(
        hospital_id=device.hospital_id,
        device_id=device.device_id,
        patient_id=device.patient_id,
        status=device.status,
        battery=device.battery,
        detail=device.detail,
        last_seen_ts=device.last_seen_ts,
        updated_ts=device.updated_ts,
    )
