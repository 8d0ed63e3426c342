"""services/metrics.py: the figures of a snapshot (counts, staff online, response over the last
24 h with an injected clock) and MetricsStream: a snapshot at once, a push soon after a change
(not at the next tick), and a burst of changes coalesced into few pushes."""

from __future__ import annotations

import asyncio

import pytest

from rpc.connections import ConnectionRegistry
from rpc.context import Principal
from rpc.errors import RpcError
from schemas.alerts import Metrics, Priority
from services.container import Services
from services.lifecycle import iso
from tests.services.conftest import T0, FakeClock, alert_input

DAY = 86_400.0
LONG_INTERVAL_MS = 60_000  # a tick can never explain a push seen within these tests


def staff(sub: str, role: str = "nurse", *hospitals: str) -> Principal:
    return Principal(sub, role, frozenset(hospitals or ("h1",)), T0 + DAY)


async def raise_alert(services: Services, priority: Priority, hospital: str = "h1") -> str:
    return (await services.alerts.create(alert_input(hospital, priority), "device-7")).id


class Sink:
    """A metrics subscriber: what the stream delivers, in order."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[Metrics] = asyncio.Queue()
        self.payloads: list[bytes] = []
        self.ended: list[RpcError | None] = []

    def event(self, event_id: str | None, payload: bytes) -> None:
        assert event_id is None  # metrics are not resumable
        self.payloads.append(payload)
        self.queue.put_nowait(Metrics.model_validate_json(payload))

    def end(self, error: RpcError | None = None) -> None:
        self.ended.append(error)

    async def next(self) -> Metrics:
        return await asyncio.wait_for(self.queue.get(), 5)

    def drain(self) -> list[Metrics]:
        items = []
        while not self.queue.empty():
            items.append(self.queue.get_nowait())
        return items


# --- snapshots --------------------------------------------------------------------------------


async def test_active_and_critical_alerts(services: Services, clock: FakeClock) -> None:
    resolved = await raise_alert(services, "critical")
    await raise_alert(services, "critical")
    acked = await raise_alert(services, "high")
    await raise_alert(services, "low")
    await raise_alert(services, "critical", "h2")
    await services.alerts.resolve(resolved, "nurse-1", None)
    await services.alerts.acknowledge(acked, "nurse-1", None)

    h1 = await services.metrics.snapshot("h1")
    assert (h1.hospital_id, h1.active_alerts, h1.critical_alerts) == ("h1", 3, 1)
    h2 = await services.metrics.snapshot("h2")
    assert (h2.active_alerts, h2.critical_alerts) == (1, 1)
    empty = await services.metrics.snapshot("h3")
    assert (empty.active_alerts, empty.critical_alerts, empty.staff_online) == (0, 0, 0)
    assert (empty.response_rate, empty.average_response_time_seconds) == (None, None)
    assert empty.generated_at == iso(clock())


async def test_staff_online_counts_distinct_staff_per_hospital(
    services: Services, registry: ConnectionRegistry
) -> None:
    async def online() -> tuple[int, int]:
        h1 = await services.metrics.snapshot("h1")
        h2 = await services.metrics.snapshot("h2")
        return h1.staff_online, h2.staff_online

    registry.add("c1", staff("nurse-1", "nurse", "h1", "h2"))
    registry.add("c2", staff("nurse-1", "nurse", "h1"))  # a second tab: still one person
    registry.add("c3", staff("monitor-1", "service", "h1", "h2"))  # a device, not staff
    registry.add("c4", staff("doc-1", "physician", "h2"))
    assert await online() == (1, 2)
    registry.remove("c1")
    assert await online() == (1, 1)  # nurse-1 is still on c2 for h1
    registry.remove("c2")
    registry.add("c5", staff("admin-1", "admin", "h1"))
    assert await online() == (1, 1)
    registry.remove("c5")
    registry.remove("c4")
    assert await online() == (0, 0)


async def test_response_rate_and_time_over_the_last_day(
    services: Services, clock: FakeClock
) -> None:
    fast = await raise_alert(services, "critical")  # target 60 s
    just_in_time = await raise_alert(services, "critical")
    slow = await raise_alert(services, "critical")
    closed = await raise_alert(services, "high")  # target 300 s
    await raise_alert(services, "low")  # target 3600 s, never answered
    none_yet = await services.metrics.snapshot("h1")
    assert (none_yet.response_rate, none_yet.average_response_time_seconds) == (None, None)

    clock.advance(30)
    await services.alerts.acknowledge(fast, "nurse-1", None)  # on time
    clock.advance(30)
    await services.alerts.acknowledge(just_in_time, "nurse-1", None)  # at 60 s: still on time
    clock.advance(30)
    await services.alerts.acknowledge(slow, "nurse-1", None)  # 90 s: late
    clock.advance(10)
    await services.alerts.resolve(closed, "nurse-1", None)  # 100 s, answered by resolving

    answered = [30, 60, 90, 100]
    metrics = await services.metrics.snapshot("h1")
    assert metrics.response_rate == pytest.approx(3 / 4)
    assert metrics.average_response_time_seconds == pytest.approx(sum(answered) / 4, abs=1e-3)

    clock.advance(3600 - 100)  # the low alert is now due, unanswered
    metrics = await services.metrics.snapshot("h1")
    assert metrics.response_rate == pytest.approx(3 / 5)
    assert metrics.average_response_time_seconds == pytest.approx(sum(answered) / 4, abs=1e-3)

    clock.advance(DAY)  # all of them are older than the window
    metrics = await services.metrics.snapshot("h1")
    assert (metrics.response_rate, metrics.average_response_time_seconds) == (None, None)
    assert metrics.generated_at == iso(clock())


async def test_due_but_unanswered_is_a_rate_of_zero(services: Services, clock: FakeClock) -> None:
    await raise_alert(services, "critical")
    clock.advance(60)
    metrics = await services.metrics.snapshot("h1")
    assert (metrics.response_rate, metrics.average_response_time_seconds) == (0.0, None)


# --- streams ----------------------------------------------------------------------------------


async def test_stream_as_an_async_iterator_starts_with_a_snapshot(services: Services) -> None:
    await raise_alert(services, "critical")
    stream = services.metrics.stream("h1", LONG_INTERVAL_MS)
    try:
        first = await asyncio.wait_for(anext(stream), 5)
        metrics = Metrics.model_validate_json(first.data.json)
        assert (metrics.active_alerts, metrics.critical_alerts) == (1, 1)
        await raise_alert(services, "critical")
        pushed = Metrics.model_validate_json((await asyncio.wait_for(anext(stream), 5)).data.json)
        assert (pushed.active_alerts, pushed.critical_alerts) == (2, 2)
    finally:
        stream.close()


async def test_a_change_is_pushed_without_waiting_for_the_interval(
    services: Services, registry: ConnectionRegistry
) -> None:
    stream = services.metrics.stream("h1", LONG_INTERVAL_MS)
    sink = Sink()
    try:
        await stream.start(sink)
        assert [m.active_alerts for m in sink.drain()] == [0]  # at once, before start returns

        alert_id = await raise_alert(services, "critical")
        assert (await sink.next()).active_alerts == 1
        await services.alerts.resolve(alert_id, "nurse-1", None)
        assert (await sink.next()).active_alerts == 0

        registry.add("c1", staff("nurse-1"))  # presence is a change too
        assert (await sink.next()).staff_online == 1
        assert sink.ended == []
    finally:
        stream.close()


async def test_a_burst_of_changes_is_coalesced(services: Services) -> None:
    stream = services.metrics.stream("h1", LONG_INTERVAL_MS)
    sink = Sink()
    try:
        await stream.start(sink)
        assert [m.active_alerts for m in sink.drain()] == [0]

        await asyncio.gather(*(raise_alert(services, "high") for _ in range(20)))

        pushes = [await sink.next()]
        while pushes[-1].active_alerts != 20:
            pushes.append(await sink.next())
        settled = await services.metrics.snapshot("h1")  # awaited after every commit
        pushes += sink.drain()
        assert settled.active_alerts == 20
        assert len(pushes) < 5
        assert [p.active_alerts for p in pushes] == sorted(p.active_alerts for p in pushes)
    finally:
        stream.close()


async def test_streams_of_one_hospital_share_each_push(services: Services) -> None:
    sinks = [Sink() for _ in range(3)]
    streams = [services.metrics.stream("h1", LONG_INTERVAL_MS) for _ in sinks]
    other = services.metrics.stream("h2", LONG_INTERVAL_MS)
    other_sink = Sink()
    try:
        for stream, sink in zip(streams, sinks, strict=True):
            await stream.start(sink)
            sink.drain()
        await other.start(other_sink)
        other_sink.drain()

        await raise_alert(services, "low")
        pushed = [await sink.next() for sink in sinks]
        assert {p.active_alerts for p in pushed} == {1}
        shared = [sink.payloads[-1] for sink in sinks]
        assert all(p is shared[0] for p in shared)  # one snapshot, encoded once, for all

        streams[0].close()
        await raise_alert(services, "low")
        assert [(await sink.next()).active_alerts for sink in sinks[1:]] == [2, 2]
        assert sinks[0].drain() == []
        assert other_sink.drain() == []  # h2 did not change
    finally:
        for stream in (*streams, other):
            stream.close()


async def test_a_change_during_a_slow_snapshot_is_still_pushed(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A push that comes while an older snapshot is still being computed must not hand out
    that older snapshot as the news (the next one would be a whole interval away)."""
    stream = services.metrics.stream("h1", LONG_INTERVAL_MS)
    sink = Sink()
    await stream.start(sink)
    sink.drain()
    held, release, second_push = asyncio.Event(), asyncio.Event(), asyncio.Event()
    real_counts, real_encoded = services.store.open_counts, services.metrics.encoded

    async def slow_counts(hospital_id: str) -> tuple[int, int]:
        counts = await real_counts(hospital_id)  # read now, handed back later
        held.set()
        await release.wait()
        return counts

    asked = 0

    async def encoded(hospital_id: str) -> bytes:
        nonlocal asked
        asked += 1
        if asked == 2:
            second_push.set()
        return await real_encoded(hospital_id)

    monkeypatch.setattr(services.store, "open_counts", slow_counts)
    monkeypatch.setattr(services.metrics, "encoded", encoded)
    try:
        await raise_alert(services, "high")
        await asyncio.wait_for(held.wait(), 5)  # the first push is computing: 1 alert
        await raise_alert(services, "high")
        await asyncio.wait_for(second_push.wait(), 5)  # the second change's push asks
        release.set()
        seen = [(await sink.next()).active_alerts]
        while seen[-1] != 2:
            seen.append((await sink.next()).active_alerts)
        assert seen in ([1, 2], [2])
    finally:
        release.set()
        stream.close()
