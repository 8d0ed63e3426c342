"""services/subscriptions.py (AlertSubscriptionService) driven directly: replay from the ring and
from the log, the hand-over from history to live with events committed meanwhile, per-alert
streams, resets, and one broken listener or subscriber costing the others nothing."""

from __future__ import annotations

import asyncio

import pytest

from rpc.errors import RpcError
from schemas.alerts import AlertEvent
from services.container import Services
from services.store import StoredEvent, format_event_id
from services.subscriptions import RING_SIZE, AlertStream
from tests.services.conftest import alert_input


class Sink:
    """An EventSink that records what a stream delivers."""

    def __init__(self) -> None:
        self.events: list[tuple[str | None, bytes]] = []
        self.ended: list[RpcError | None] = []

    def event(self, event_id: str | None, payload: bytes) -> None:
        self.events.append((event_id, payload))

    def end(self, error: RpcError | None = None) -> None:
        self.ended.append(error)

    @property
    def ids(self) -> list[str]:
        return [event_id or "" for event_id, _ in self.events]


async def raise_alerts(services: Services, count: int, hospital: str = "h1") -> list[str]:
    return [
        (await services.alerts.create(alert_input(hospital, title=f"a{n}"), "dev")).id
        for n in range(count)
    ]


async def all_ids(services: Services, hospital: str = "h1") -> list[str]:
    return [e.id for e in await services.store.events_after(hospital, 0, 10_000)]


async def start(
    services: Services, last_event_id: str | None, alert_id: str | None = None
) -> tuple[AlertStream, Sink]:
    stream = await services.subscriptions.stream("h1", alert_id, last_event_id)
    sink = Sink()
    await stream.start(sink)
    return stream, sink


@pytest.mark.parametrize("missed", [10, RING_SIZE - 1, RING_SIZE + 50, 3 * RING_SIZE])
async def test_replay_gives_exactly_the_missed_events_from_ring_or_log(
    services: Services, missed: int
) -> None:
    await raise_alerts(services, 5)
    position = (await all_ids(services))[-1]
    await raise_alerts(services, missed)
    await raise_alerts(services, 3, hospital="h2")  # another hospital's events interleave
    stream, sink = await start(services, position)
    expected = [i for i in await all_ids(services) if i > position]
    assert sink.ids == expected
    assert len(expected) == missed
    live = await raise_alerts(services, 1)
    assert decode_last(sink).alert_id == live[0]
    assert len(sink.ids) == missed + 1
    stream.close()


def event_of(payload: bytes) -> AlertEvent:
    return AlertEvent.model_validate_json(payload)


def decode_last(sink: Sink) -> AlertEvent:
    return event_of(sink.events[-1][1])


async def test_events_committed_while_history_is_read_come_once_and_in_order(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The live listener is attached before the log is read: what commits during the read is
    held and merged by event id, none missed, none twice."""
    await raise_alerts(services, 5)
    position = (await all_ids(services))[0]
    await raise_alerts(services, 2 * RING_SIZE)  # the position is only in the log
    store = services.store
    read = store.events_after
    committed_during_read: list[str] = []

    async def read_while_alerts_commit(*args: object, **kwargs: object) -> list[StoredEvent]:
        page = await read(*args, **kwargs)  # type: ignore[arg-type]
        if not committed_during_read:
            committed_during_read.extend(await raise_alerts(services, 3))
        return page

    monkeypatch.setattr(store, "events_after", read_while_alerts_commit)
    stream, sink = await start(services, position)
    monkeypatch.undo()
    expected = [i for i in await all_ids(services) if i > position]
    assert sink.ids == expected  # the three from during the read included, once
    assert len(set(sink.ids)) == len(sink.ids)
    stream.close()


async def test_an_alert_stream_gets_only_its_alert(services: Services) -> None:
    mine, other = await raise_alerts(services, 2)
    position = (await all_ids(services))[-1]
    for _ in range(RING_SIZE + 10):  # push my alert's events out of the ring
        await services.alerts.escalate(other, "md-1", None)
    await services.alerts.acknowledge(mine, "rn-1", None)
    stream, sink = await start(services, position, alert_id=mine)
    assert [event_of(p).type for _, p in sink.events] == ["alert.acknowledged"]
    await services.alerts.escalate(other, "md-1", None)
    await services.alerts.resolve(mine, "rn-1", None)
    assert [event_of(p).type for _, p in sink.events] == [
        "alert.acknowledged",
        "alert.resolved",
    ]
    stream.close()


@pytest.mark.parametrize("position", ["nonsense", "-1", format_event_id(10**9)])
async def test_an_unknown_position_starts_with_a_reset_then_goes_on_live(
    services: Services, position: str
) -> None:
    await raise_alerts(services, 3)
    newest = (await all_ids(services))[-1]
    stream, sink = await start(services, position)
    ((reset_id, reset),) = sink.events
    assert reset_id == newest
    assert b'"type":"stream.reset"' in reset
    live = await raise_alerts(services, 1)
    assert decode_last(sink).alert_id == live[0]
    stream.close()


async def test_a_failing_listener_costs_nobody_the_event(services: Services) -> None:
    def broken(event: StoredEvent) -> None:
        raise RuntimeError("listener bug")

    services.subscriptions.on(broken)
    stream, sink = await start(services, None)
    commits = services.store.commits
    # two alerts raised at once share a commit: both events go out in one publish
    await asyncio.gather(*(services.alerts.create(alert_input(title=t), "dev") for t in "ab"))
    assert services.store.commits == commits + 1
    assert len(sink.events) == 2  # subscribers still hear every event of the batch
    stream.close()


async def test_a_failing_subscriber_is_ended_and_the_others_go_on(services: Services) -> None:
    broken_stream, broken = await start(services, None)
    healthy_stream, healthy = await start(services, None)

    def explode(event_id: str | None, payload: bytes) -> None:
        raise RuntimeError("socket bug")

    broken.event = explode  # type: ignore[method-assign]
    await raise_alerts(services, 2)
    assert len(healthy.events) == 2
    assert [e.code.name if e else None for e in broken.ended] == ["INTERNAL_SERVER_ERROR"]
    assert broken_stream.closed
    assert not healthy_stream.closed
    healthy_stream.close()


async def test_the_all_zeros_id_resumes_and_pages_the_whole_retained_log(
    services: Services,
) -> None:
    """CONTRACT 7: `0000000000000000` is the position before a hospital's first event."""
    zeros = format_event_id(0)
    assert zeros == "0000000000000000"
    empty = await services.subscriptions.page("h1", zeros, 100)
    assert (empty.events, empty.last_event_id) == ([], zeros)
    await raise_alerts(services, 3)
    await raise_alerts(services, 2, hospital="h2")
    made = await raise_alerts(services, RING_SIZE + 5)  # past the ring: from the log
    whole = await all_ids(services)
    assert len(whole) == RING_SIZE + 8
    page = await services.subscriptions.page("h1", zeros, 1000)
    assert [e.id for e in page.events] == whole
    assert page.last_event_id == whole[-1]
    stream, sink = await start(services, zeros)
    assert sink.ids == whole
    assert decode_last(sink).alert_id == made[-1]
    stream.close()
