"""Live hospital metrics: `getMetrics` and `subscribeToMetrics`.

A snapshot costs two indexed queries and is shared: computed at most once per hospital while
nothing changed (and at most every MIN_AGE_S for the periodic sends), encoded once, and pushed
to every metrics subscriber of the hospital. A change (an alert event, someone coming online or
leaving) marks the hospital dirty and schedules one push CHANGE_DELAY_S later, so a burst of
changes costs one snapshot and subscribers hear of it within 250 ms.

Definitions (CONTRACT 4): `responseRate` is the share of the last 24 h's alerts that are due
(their priority's target has passed, or they were answered) and were answered within it;
`averageResponseTimeSeconds` is creation to first answer over the same alerts. The first answer
is the first acknowledgement, or the resolution of an alert resolved without one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from rpc.connections import ConnectionRegistry
from rpc.errors import to_rpc_error
from rpc.stream import EventSink, PushStream
from schemas.alerts import Metrics, Priority
from services.lifecycle import iso
from services.store import AlertStore, StoredEvent

WINDOW_S = 24 * 3600.0
CHANGE_DELAY_S = 0.1
MIN_AGE_S = 0.2


class _Hospital:
    __slots__ = (
        "computing",
        "computing_generation",
        "dirty",
        "generation",
        "payload",
        "push_handle",
        "streams",
        "taken_at",
    )

    def __init__(self) -> None:
        self.payload: bytes | None = None
        self.taken_at = 0.0
        self.generation = 0  # bumped on each change; a snapshot taken before it is stale
        self.dirty = True
        self.computing: asyncio.Future[bytes] | None = None
        self.computing_generation = 0
        self.push_handle: asyncio.TimerHandle | None = None
        self.streams: set[MetricsStream] = set()


class MetricsService:
    def __init__(
        self,
        store: AlertStore,
        registry: ConnectionRegistry,
        targets: dict[Priority, float],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.registry = registry
        self.targets = targets
        self.clock = clock
        self._hospitals: dict[str, _Hospital] = {}
        registry.subscribe(self._presence_changed)

    # --- snapshots --------------------------------------------------------------------------

    async def snapshot(self, hospital_id: str) -> Metrics:
        return Metrics.model_validate_json(await self.encoded(hospital_id))

    async def encoded(self, hospital_id: str) -> bytes:
        state = self._hospitals.get(hospital_id) or _Hospital()
        fresh = time.monotonic() - state.taken_at < MIN_AGE_S
        if state.payload is not None and not state.dirty and fresh:
            return state.payload
        # Share a snapshot being computed only if nothing changed since it began: one that
        # started before a change must not be handed out as the news of that change.
        if state.computing is None or state.computing_generation != state.generation:
            state.computing = asyncio.ensure_future(self._compute(hospital_id, state))
            state.computing_generation = state.generation
        return await asyncio.shield(state.computing)

    async def _compute(self, hospital_id: str, state: _Hospital) -> bytes:
        generation = state.generation
        try:
            now = self.clock()
            active, critical = await self.store.open_counts(hospital_id)
            stats = await self.store.response_stats(hospital_id, now - WINDOW_S, now, self.targets)
        finally:
            if state.computing is asyncio.current_task():
                state.computing = None
        metrics = Metrics(
            hospital_id=hospital_id,
            active_alerts=active,
            critical_alerts=critical,
            staff_online=self.registry.online_subjects(hospital_id),
            response_rate=(stats.on_time / stats.due) if stats.due else None,
            average_response_time_seconds=(
                round(stats.average_seconds, 3) if stats.average_seconds is not None else None
            ),
            generated_at=iso(now),
        )
        payload = metrics.model_dump_json(by_alias=True).encode()
        if hospital_id in self._hospitals and generation == state.generation:
            state.payload, state.taken_at, state.dirty = payload, time.monotonic(), False
        return payload

    # --- changes ----------------------------------------------------------------------------

    def alert_committed(self, event: StoredEvent) -> None:
        self.changed(event.hospital_id)

    def _presence_changed(self, hospitals: frozenset[str]) -> None:
        for hospital_id in hospitals:
            self.changed(hospital_id)

    def changed(self, hospital_id: str) -> None:
        state = self._hospitals.get(hospital_id)
        if state is None:
            return  # nobody watches it: the next snapshot reads fresh anyway
        state.dirty = True
        state.generation += 1
        if state.streams and state.push_handle is None:
            loop = asyncio.get_running_loop()
            state.push_handle = loop.call_later(CHANGE_DELAY_S, self._push_soon, hospital_id)

    def _push_soon(self, hospital_id: str) -> None:
        state = self._hospitals.get(hospital_id)
        if state is None:
            return
        state.push_handle = None
        task = asyncio.ensure_future(self._push(hospital_id))
        task.add_done_callback(_quiet)

    async def _push(self, hospital_id: str) -> None:
        payload = await self.encoded(hospital_id)
        state = self._hospitals.get(hospital_id)
        for stream in tuple(state.streams if state else ()):
            stream.deliver(payload)

    # --- subscriptions ----------------------------------------------------------------------

    def stream(self, hospital_id: str, interval_ms: int) -> MetricsStream:
        return MetricsStream(self, hospital_id, interval_ms / 1000.0)

    def _attach(self, stream: MetricsStream) -> None:
        state = self._hospitals.setdefault(stream.hospital_id, _Hospital())
        state.streams.add(stream)

    def _detach(self, stream: MetricsStream) -> None:
        state = self._hospitals.get(stream.hospital_id)
        if state is None:
            return
        state.streams.discard(stream)
        if not state.streams:
            if state.push_handle is not None:
                state.push_handle.cancel()
            del self._hospitals[stream.hospital_id]


def _quiet(task: asyncio.Future[None]) -> None:
    if not task.cancelled():
        task.exception()  # a failed push is retried by the next tick or change


class MetricsStream(PushStream):
    """A snapshot at once, then one every `interval_s`, and one soon after each change."""

    def __init__(self, service: MetricsService, hospital_id: str, interval_s: float) -> None:
        super().__init__()
        self.service = service
        self.hospital_id = hospital_id
        self.interval_s = interval_s
        self._task: asyncio.Task[None] | None = None
        service._attach(self)

    def deliver(self, payload: bytes) -> None:
        if self._sink is not None and not self.closed:
            self._sink.event(None, payload)

    async def _open(self, sink: EventSink) -> None:
        self.deliver(await self.service.encoded(self.hospital_id))
        if not self.closed:
            self._task = asyncio.create_task(self._tick(), name="metrics-tick")

    async def _tick(self) -> None:
        while not self.closed:
            await asyncio.sleep(self.interval_s)
            try:
                self.deliver(await self.service.encoded(self.hospital_id))
            except Exception as exc:  # storage trouble: end the stream with the error
                if self._sink is not None and not self.closed:
                    self._sink.end(to_rpc_error(exc))
                return

    def _close(self) -> None:
        self.service._detach(self)
        if self._task is not None and self._task is not asyncio.current_task():
            self._task.cancel()
