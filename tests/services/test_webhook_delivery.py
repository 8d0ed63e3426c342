"""Outbound webhooks on each store, against a receiver on 127.0.0.1 (CONTRACT 9): order,
signature and event id, retries with back-off on the injected clock (5xx, timeouts), a restart
mid-retry, disabling after 24 h of failures, one sender per endpoint in a cluster."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import orjson
import pytest

from rpc import signatures
from rpc.cluster_memory import InMemoryClusterState, MemoryHub
from rpc.connections import ConnectionRegistry
from rpc.context import Principal
from rpc.transport_aiohttp.webhook_client import WebhookClient
from services.config import DomainConfig
from services.container import Services
from services.webhook_delivery import FAILURE_WINDOW_S, WebhookDeliverer, backoff, matches
from tests.polling import until
from tests.services.conftest import FakeClock, alert_input
from tests.services.stores import Backend
from tests.services.webhook_receiver import Receiver, receiver

TIMEOUT_S = 0.3


@pytest.fixture
def config(backend: Backend) -> DomainConfig:
    return backend.config(webhook_allow_private=True)


@pytest.fixture
async def hook_receiver() -> AsyncIterator[Receiver]:
    async with receiver() as got:
        yield got


@pytest.fixture
async def sending(services: Services) -> AsyncIterator[Services]:
    """The services with a sender, driven by hand (`run_due`), no background loop."""
    services.deliveries.sender = WebhookClient(allow_private=True, timeout_s=TIMEOUT_S)
    yield services
    await services.deliveries.sender.close()


async def register(
    services: Services, url: str, events: list[str] | None = None
) -> tuple[str, str]:
    row = await services.webhooks.create("h1", url, events or ["alert.*"], None)
    return row.webhook_id, row.secret


def verify(secret: str, headers: dict[str, str], body: bytes, now: float) -> None:
    assert signatures.verify(secret, headers[signatures.HEADER], body, now) is None


async def test_events_arrive_in_order_signed_exactly_as_subscribers_get_them(
    sending: Services, hook_receiver: Receiver, clock: FakeClock
) -> None:
    await sending.alerts.create(alert_input(), "device-1")  # before: not sent
    _, secret = await register(sending, hook_receiver.url, ["alert.created", "alert.acknowledged"])
    first = await sending.alerts.create(alert_input(title="one"), "device-1")
    second = await sending.alerts.create(alert_input(title="two"), "device-1")
    await sending.alerts.acknowledge(first.id, "nurse-1", None)
    await sending.alerts.resolve(second.id, "nurse-1", None)  # not asked for
    third = await sending.alerts.create(alert_input(title="three"), "device-1")
    assert await sending.deliveries.run_due() == 4
    events = await sending.store.events_after("h1", 0, 100)
    wanted = [e for e in events if orjson.loads(e.payload)["type"] != "alert.resolved"][1:]
    assert [r.body for r in hook_receiver.requests] == [e.payload for e in wanted]
    for request, event in zip(hook_receiver.requests, wanted, strict=True):
        assert (
            request.headers["X-Alertwire-Event-Id"] == event.id == orjson.loads(request.body)["id"]
        )
        assert request.headers["Content-Type"] == "application/json"
        verify(secret, request.headers, request.body, clock())
    alerts = [orjson.loads(r.body)["alert"]["id"] for r in hook_receiver.requests]
    assert alerts == [first.id, second.id, first.id, third.id]
    assert await sending.deliveries.run_due() == 0  # nothing twice


async def test_a_failing_endpoint_is_retried_with_backoff_and_keeps_its_order(
    sending: Services, hook_receiver: Receiver, clock: FakeClock
) -> None:
    webhook_id, _ = await register(sending, hook_receiver.url)
    hook_receiver.statuses = [500, 503]
    await sending.alerts.create(alert_input(title="one"), "device-1")
    await sending.alerts.create(alert_input(title="two"), "device-1")
    assert await sending.deliveries.run_due() == 1  # failed: stops there
    assert await sending.deliveries.run_due() == 0  # not due yet
    clock.advance(backoff(1))
    assert backoff(1) == 1.0
    assert await sending.deliveries.run_due() == 1  # failed again
    clock.advance(1.0)
    assert await sending.deliveries.run_due() == 0  # 2 s this time
    hook = await sending.webhooks.get(webhook_id)
    listed = await sending.webhooks.deliveries(hook, 10)
    assert [(d.status, d.attempt, d.http_status) for d in listed] == [
        ("pending", 3, None),
        ("failed", 2, 503),
        ("failed", 1, 500),
    ]
    assert listed[0].at == clock() + 1.0
    clock.advance(1.0)
    assert await sending.deliveries.run_due() == 2
    titles = [orjson.loads(r.body)["alert"]["title"] for r in hook_receiver.requests]
    assert titles == ["one", "one", "one", "two"]
    listed = await sending.webhooks.deliveries(await sending.webhooks.get(webhook_id), 10)
    assert [d.status for d in listed] == ["delivered", "delivered", "failed", "failed"]


def test_backoff_doubles_from_one_second_to_an_hour() -> None:
    assert [backoff(n) for n in range(1, 6)] == [1, 2, 4, 8, 16]
    assert backoff(12) == 2048
    assert backoff(13) == backoff(400) == 3600


async def test_a_timeout_is_a_failed_attempt(
    sending: Services, hook_receiver: Receiver, clock: FakeClock
) -> None:
    webhook_id, _ = await register(sending, hook_receiver.url)
    hook_receiver.hang = True
    await sending.alerts.create(alert_input(), "device-1")
    assert await sending.deliveries.run_due() == 1
    (attempt,) = await sending.integrations.deliveries(webhook_id, 10)
    assert (attempt.status, attempt.http_status, attempt.error) == ("failed", None, "timed out")
    hook_receiver.hang = False
    clock.advance(1.0)
    assert await sending.deliveries.run_due() == 1
    assert len(hook_receiver.requests) == 2
    assert hook_receiver.requests[0].body == hook_receiver.requests[1].body


async def test_a_restart_mid_retry_goes_on_from_the_store(
    config: DomainConfig, hook_receiver: Receiver, clock: FakeClock
) -> None:
    first = await Services.open(config, ConnectionRegistry(), clock=clock, background=False)
    first.deliveries.sender = WebhookClient(allow_private=True, timeout_s=TIMEOUT_S)
    try:
        _, secret = await register(first, hook_receiver.url)
        hook_receiver.statuses = [500]
        await first.alerts.create(alert_input(title="one"), "device-1")
        await first.alerts.create(alert_input(title="two"), "device-1")
        assert await first.deliveries.run_due() == 1
    finally:
        await first.deliveries.sender.close()
        await first.close()
    clock.advance(1.0)
    second = await Services.open(config, ConnectionRegistry(), clock=clock, background=False)
    second.deliveries.sender = WebhookClient(allow_private=True, timeout_s=TIMEOUT_S)
    try:
        assert await second.deliveries.run_due() == 2
    finally:
        await second.deliveries.sender.close()
        await second.close()
    titles = [orjson.loads(r.body)["alert"]["title"] for r in hook_receiver.requests]
    assert titles == ["one", "one", "two"]
    verify(secret, hook_receiver.requests[-1].headers, hook_receiver.requests[-1].body, clock())


async def test_an_endpoint_failing_for_24_hours_is_disabled_and_admins_told(
    sending: Services, hook_receiver: Receiver, clock: FakeClock
) -> None:
    told: list[tuple[str, str]] = []

    async def tell(hospital: str, hook: str) -> None:
        told.append((hospital, hook))

    sending.deliveries.on_endpoint_disabled = tell
    webhook_id, _ = await register(sending, hook_receiver.url)
    hook_receiver.statuses = [500] * 1000
    await sending.alerts.create(alert_input(), "device-1")
    started = clock()
    attempts = 0
    while (await sending.webhooks.get(webhook_id)).enabled:
        assert await sending.deliveries.run_due() == 1
        attempts += 1
        hook = await sending.webhooks.get(webhook_id)
        clock.now = hook.next_attempt_ts
        assert attempts < 100
    assert clock() - started >= FAILURE_WINDOW_S
    assert told == [("h1", webhook_id)]
    # 1+2+...+2048 s, then hourly: about 20 h of doubling and hourly retries, then the last.
    assert 25 < attempts < 40
    before = len(hook_receiver.requests)
    clock.advance(7200)
    await sending.alerts.create(alert_input(), "device-1")
    assert await sending.deliveries.run_due() == 0
    assert len(hook_receiver.requests) == before
    (listed,) = await sending.webhooks.of_hospital("h1")
    assert listed.enabled is False


async def test_a_redirect_is_not_followed(sending: Services, hook_receiver: Receiver) -> None:
    webhook_id, _ = await register(sending, hook_receiver.url)
    hook_receiver.statuses = [302]
    await sending.alerts.create(alert_input(), "device-1")
    assert await sending.deliveries.run_due() == 1
    (attempt,) = await sending.integrations.deliveries(webhook_id, 10)
    assert (attempt.status, attempt.http_status) == ("failed", 302)
    assert len(hook_receiver.requests) == 1


async def test_exactly_one_node_sends_for_an_endpoint(
    sending: Services, hook_receiver: Receiver, clock: FakeClock
) -> None:
    hub = MemoryHub()
    nodes = [
        WebhookDeliverer(
            sending.store, sending.integrations, InMemoryClusterState(f"n{i}", hub), clock
        )
        for i in range(3)
    ]
    for node in nodes:
        node.sender = WebhookClient(allow_private=True, timeout_s=TIMEOUT_S)
    try:
        await register(sending, hook_receiver.url)
        for n in range(5):
            await sending.alerts.create(alert_input(title=f"t{n}"), "device-1")
        made = await asyncio.gather(*(node.run_due() for node in nodes))
        assert sorted(made) == [0, 0, 5]
        titles = [orjson.loads(r.body)["alert"]["title"] for r in hook_receiver.requests]
        assert titles == [f"t{n}" for n in range(5)]
    finally:
        for node in nodes:
            await node.stop()


async def test_a_stopping_node_hands_its_endpoints_over(
    sending: Services, hook_receiver: Receiver, clock: FakeClock
) -> None:
    hub = MemoryHub()
    first, second = (
        WebhookDeliverer(
            sending.store, sending.integrations, InMemoryClusterState(name, hub), clock
        )
        for name in ("n1", "n2")
    )
    for node in (first, second):
        node.sender = WebhookClient(allow_private=True, timeout_s=TIMEOUT_S)
        sending.subscriptions.on(node.heard)  # as Services wires its own
    try:
        await register(sending, hook_receiver.url)
        await sending.alerts.create(alert_input(title="one"), "device-1")
        assert await first.run_due() == 1
        await sending.alerts.create(alert_input(title="two"), "device-1")
        assert await second.run_due() == 0  # first holds the lease
        await first.stop()
        assert await second.run_due() == 1  # handed over at once, from the durable cursor
        titles = [orjson.loads(r.body)["alert"]["title"] for r in hook_receiver.requests]
        assert titles == ["one", "two"]
    finally:
        await first.stop()
        await second.stop()


async def test_many_deliveries_are_all_recorded_and_the_cursor_follows(
    sending: Services, hook_receiver: Receiver
) -> None:
    webhook_id, _ = await register(sending, hook_receiver.url)
    for n in range(150):  # more than a page (100) and several saves (32 each)
        await sending.alerts.create(alert_input(title=f"t{n}"), "device-1")
    assert await sending.deliveries.run_due() == 150
    attempts = await sending.integrations.deliveries(webhook_id, 200)
    assert len(attempts) == 150
    assert {a.status for a in attempts} == {"delivered"}
    events = await sending.store.events_after("h1", 0, 200)
    hook = await sending.webhooks.get(webhook_id)
    assert hook.cursor == events[-1].seq
    assert [a.event_id for a in reversed(attempts)] == [e.id for e in events]
    assert await sending.deliveries.run_due() == 0


async def test_a_disabled_endpoint_notifies_the_hospitals_admins_once(
    sending: Services, hook_receiver: Receiver, clock: FakeClock
) -> None:
    """The services' own wiring: the admins the staff directory knows for the hospital get one
    `webhook.disabled` notification; other staff and other hospitals' admins get none."""
    notifications = sending.notifications
    notifications.heard_call(Principal("admin-1", "admin", frozenset({"h1"}), 0.0))
    notifications.heard_call(Principal("admin-2", "admin", frozenset({"h2"}), 0.0))
    notifications.heard_call(Principal("nurse-1", "nurse", frozenset({"h1"}), 0.0))
    await until(lambda: notifications.pending == 0, "the staff directory written")
    webhook_id, _ = await register(sending, hook_receiver.url)
    hook_receiver.statuses = [500] * 1000
    await sending.alerts.create(alert_input(), "device-1")
    while (await sending.webhooks.get(webhook_id)).enabled:
        assert await sending.deliveries.run_due() == 1
        clock.now = (await sending.webhooks.get(webhook_id)).next_attempt_ts
    (note,), _, unread = await notifications.page("admin-1", False, None, 10)
    assert note.kind == "webhook.disabled"
    assert note.hospital_id == "h1"
    assert unread == 1
    assert hook_receiver.url not in f"{note.title} {note.message}"
    for other in ("admin-2", "nurse-1"):
        assert (await notifications.page(other, False, None, 10))[0] == []


def test_a_wildcard_matches_every_alert_event_but_notes() -> None:
    for event_type in ("alert.created", "alert.acknowledged", "alert.resolved", "alert.updated"):
        assert matches(["alert.*"], event_type)
    assert not matches(["alert.*"], "alert.noted")
    assert matches(["alert.*", "alert.noted"], "alert.noted")
    assert matches(["alert.created"], "alert.created")
    assert not matches(["alert.created"], "alert.resolved")


async def test_a_note_goes_only_to_an_endpoint_that_names_it(
    sending: Services, hook_receiver: Receiver
) -> None:
    await register(sending, hook_receiver.url, ["alert.*"])
    await register(sending, hook_receiver.url, ["alert.noted"])
    alert = await sending.alerts.create(alert_input(), "device-1")
    await sending.alerts.add_note(alert.id, "nurse-1", "patient anxious")
    while await sending.deliveries.run_due():
        pass
    # Two endpoints on one receiver: the wildcard's gets the creation only, the other the note.
    types = sorted(orjson.loads(r.body)["type"] for r in hook_receiver.requests)
    assert types == ["alert.created", "alert.noted"]
