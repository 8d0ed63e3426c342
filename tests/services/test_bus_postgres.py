"""The PostgreSQL event bus in one process, on a real server: the commit itself announces its
events (so a node that dies after committing has told everyone already), a notification too
large to carry its event is read from the log, and two nodes (two `Services` on one schema)
deliver each other's commits once, in order."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from rpc.connections import ConnectionRegistry
from schemas.alerts import CreateAlertInput
from services.alerts import AlertService
from services.bus_postgres import PostgresEventBus, parse_notice
from services.config import DEFAULT_TARGETS, DomainConfig
from services.container import Services
from services.store import StoredEvent
from tests.polling import until
from tests.postgres import connect
from tests.services.conftest import FakeClock, alert_input
from tests.services.stores import PostgresBackend, open_store
from tests.services.test_subscriptions import Sink

# An alert whose event is past NOTIFY's limit: 2,000 four-byte characters.
LONG = "\N{HOSPITAL}" * 2000


def long_alert() -> CreateAlertInput:
    return alert_input().model_copy(update={"message": LONG})


@pytest.fixture
async def nodes(postgres_url: str, clock: FakeClock) -> AsyncIterator[tuple[Services, Services]]:
    config = DomainConfig(postgres_url=postgres_url)
    first = await Services.open(config, ConnectionRegistry(), clock=clock, background=False)
    second = await Services.open(config, ConnectionRegistry(), clock=clock, background=False)
    try:
        yield first, second
    finally:
        await second.close()
        await first.close()


def test_a_notice_is_an_event_or_a_position() -> None:
    event = parse_notice('7\th1\tal-1\t{"a":"b\\tc"}')
    assert event == StoredEvent(7, "h1", "al-1", b'{"a":"b\\tc"}')
    assert parse_notice("8\th1") == ("h1", 8)
    assert parse_notice("x\th1") is None
    assert parse_notice("9\th1\tal-1") is None


async def test_the_commit_itself_announces_each_event(postgres_url: str, clock: FakeClock) -> None:
    heard: list[str] = []
    async with open_store(PostgresBackend(postgres_url)) as store:  # migrated
        store.on_commit = lambda events: None  # this "node" publishes nothing itself
        listener = await connect(postgres_url)
        try:
            channel = await listener.fetchval("SELECT alertwire_channel()")
            assert channel.startswith("alertwire_events:t_")  # the test's own schema
            await listener.add_listener(channel, lambda *args: heard.append(args[3]))
            alerts = AlertService(store, dict(DEFAULT_TARGETS), clock)
            small = await alerts.create(alert_input(), "device-1")
            await alerts.create(long_alert(), "device-1")
            logged = await store.events_after("h1", 0, 10)
            await until(lambda: len(heard) == 2, "both notifications")
        finally:
            await listener.close()
    assert parse_notice(heard[0]) == logged[0]  # the event itself, byte for byte
    assert logged[0].alert_id == small.id
    assert parse_notice(heard[1]) == ("h1", 2)  # too large: only where it is
    assert len(logged[1].payload) > 8000


async def test_two_nodes_deliver_each_others_commits_once_in_order(
    nodes: tuple[Services, Services],
) -> None:
    first, second = nodes
    sinks = []
    for node in nodes:
        stream = await node.subscriptions.stream("h1", None, None)
        sink = Sink()
        await stream.start(sink)
        sinks.append(sink)
    made = []
    for n in range(6):
        node = nodes[n % 2]
        made.append((await node.alerts.create(alert_input(title=f"a{n}"), "device-1")).id)
    made.append((await second.alerts.create(long_alert(), "device-1")).id)  # read from the log
    logged = await first.store.events_after("h1", 0, 100)
    assert [e.alert_id for e in logged] == made
    for sink in sinks:

        def complete(sink: Sink = sink) -> bool:
            return len(sink.events) >= len(made)

        await until(complete, "every event on each node")
        assert sink.ids == [e.id for e in logged]
        assert [payload for _, payload in sink.events] == [e.payload for e in logged]


async def test_the_bus_recovers_a_lost_listen_connection_by_itself(
    nodes: tuple[Services, Services], postgres_url: str
) -> None:
    first, second = nodes
    bus = second.bus
    assert isinstance(bus, PostgresEventBus)
    assert bus.health() == {"bus": "ok"}
    stream = await second.subscriptions.stream("h1", None, None)
    sink = Sink()
    await stream.start(sink)
    admin = await connect(postgres_url)
    try:  # only the second node's LISTEN connection: its pool is untouched
        pid = bus.backend_pid
        assert pid is not None
        assert await admin.fetchval("SELECT pg_terminate_backend($1, 5000)", pid)
    finally:
        await admin.close()
    await until(lambda: bus.health() == {"bus": "degraded"}, "the bus to notice")
    made = [(await first.alerts.create(alert_input(), "device-1")).id for _ in range(3)]
    await until(lambda: bus.health() == {"bus": "ok"}, "the bus to reconnect", timeout_s=10)
    await until(lambda: len(sink.events) >= 3, "the events committed while it was down")
    logged = await first.store.events_after("h1", 0, 100)
    assert sink.ids == [e.id for e in logged]
    assert [e.alert_id for e in logged] == made
    stream.close()
