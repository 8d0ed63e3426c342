"""Outbound device events (`device.*`, CONTRACT 9) on each store, against receivers on
127.0.0.1: only to endpoints that ask, in order, signed, with their own ids; retried after a
5xx with the same back-off, recorded, across a restart; one sender per endpoint in a cluster;
alert events to the same endpoint keep their order."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from rpc import signatures
from rpc.cluster_memory import InMemoryClusterState, MemoryHub
from rpc.connections import ConnectionRegistry
from rpc.transport_aiohttp.webhook_client import WebhookClient
from schemas.devices import ReportDeviceStatusInput
from services.config import DomainConfig
from services.container import Services
from services.webhook_delivery import WebhookDeliverer, backoff, matches, wants_devices
from tests.services.conftest import FakeClock, alert_input
from tests.services.stores import Backend
from tests.services.webhook_receiver import Receiver, receiver

TIMEOUT_S = 0.3


@pytest.fixture
def config(backend: Backend) -> DomainConfig:
    return backend.config(webhook_allow_private=True)


@pytest.fixture
async def sending(services: Services) -> AsyncIterator[Services]:
    """The services with a sender, driven by hand (`run_due`), no background loop."""
    services.deliveries.sender = WebhookClient(allow_private=True, timeout_s=TIMEOUT_S)
    yield services
    await services.deliveries.sender.close()


async def device_status(
    services: Services, device: str, status: str, patient: str | None = "p1"
) -> None:
    data = ReportDeviceStatusInput.model_validate(
        {"hospitalId": "h1", "deviceId": device, "status": status, "patientId": patient}
    )
    await services.vitals.report_status(data, "gateway-1")


def bodies(got: Receiver) -> list[dict[str, Any]]:
    return [orjson.loads(r.body) for r in got.requests]


def statuses(got: Receiver) -> list[tuple[str, str]]:
    return [(b["device"]["deviceId"], b["device"]["status"]) for b in bodies(got)]


def test_the_filters() -> None:
    assert matches(["device.*"], "device.status")
    assert matches(["device.status"], "device.status")
    assert not matches(["alert.*"], "device.status")
    assert not matches(["device.*"], "alert.created")
    assert wants_devices(["alert.created", "device.*"])
    assert not wants_devices(["alert.*"])


async def test_device_events_go_only_to_endpoints_that_ask_in_order_and_signed(
    sending: Services, clock: FakeClock
) -> None:
    await device_status(sending, "d0", "online")  # before the endpoints: not sent
    async with receiver() as devices, receiver() as alerts, receiver() as both:
        dev = await sending.webhooks.create("h1", devices.url, ["device.*"], None)
        await sending.webhooks.create("h1", alerts.url, ["alert.*"], None)
        await sending.webhooks.create("h1", both.url, ["alert.created", "device.status"], None)
        await device_status(sending, "d1", "online")
        await sending.alerts.create(alert_input(title="one"), "device-1")
        await device_status(sending, "d1", "online")  # no change: no event
        await device_status(sending, "d2", "maintenance")
        await device_status(sending, "d1", "offline")  # raises a device.offline alert too
        await sending.deliveries.run_due()
        expected = [("d1", "online"), ("d2", "maintenance"), ("d1", "offline")]
        assert statuses(devices) == expected
        for request, body in zip(devices.requests, bodies(devices), strict=True):
            assert request.headers["X-Alertwire-Event-Id"] == body["id"]
            assert body["id"].startswith("dev-")
            assert body["type"] == "device.status"
            assert body["hospitalId"] == "h1"
            assert request.headers["Content-Type"] == "application/json"
            verified = signatures.verify(
                dev.secret, request.headers[signatures.HEADER], request.body, clock()
            )
            assert verified is None
        ids = [b["id"] for b in bodies(devices)]
        assert ids == sorted(ids)
        assert {b["type"] for b in bodies(alerts)} <= {"alert.created", "alert.updated"}
        assert next(b["alert"]["title"] for b in bodies(alerts)) == "one"
        alert_events = [b for b in bodies(both) if b["type"].startswith("alert.")]
        device_events = [b for b in bodies(both) if b["type"] == "device.status"]
        assert [b["id"] for b in alert_events] == [
            b["id"] for b in bodies(alerts) if b["type"] == "alert.created"
        ]
        assert [b["id"] for b in device_events] == ids
        assert await sending.deliveries.run_due() == 0  # nothing twice


async def test_a_failed_device_event_is_retried_with_backoff_and_recorded(
    sending: Services, clock: FakeClock
) -> None:
    async with receiver() as got:
        hook = await sending.webhooks.create("h1", got.url, ["device.*", "alert.created"], None)
        got.statuses = [500, 503]
        await device_status(sending, "d1", "online")
        await device_status(sending, "d2", "online")
        assert await sending.deliveries.run_due() == 1  # failed: stops there
        await sending.alerts.create(alert_input(title="meanwhile"), "device-1")
        assert await sending.deliveries.run_due() == 0  # the endpoint waits 1 s
        clock.advance(backoff(1))
        assert await sending.deliveries.run_due() == 1  # the failed device event first
        clock.advance(backoff(1))
        assert await sending.deliveries.run_due() == 0  # 2 s this time
        clock.advance(backoff(2) - backoff(1))
        assert await sending.deliveries.run_due() == 3
        assert [(b["type"], b.get("device", {}).get("deviceId")) for b in bodies(got)] == [
            ("device.status", "d1"),
            ("device.status", "d1"),
            ("device.status", "d1"),
            ("device.status", "d2"),
            ("alert.created", None),
        ]
        ids = [b["id"] for b in bodies(got)]
        listed = await sending.webhooks.deliveries(await sending.webhooks.get(hook.webhook_id), 10)
        assert [(d.event_id, d.attempt, d.status, d.http_status) for d in reversed(listed)] == [
            (ids[0], 1, "failed", 500),
            (ids[0], 2, "failed", 503),
            (ids[0], 3, "delivered", 200),
            (ids[3], 1, "delivered", 200),
            (ids[4], 1, "delivered", 200),
        ]
        assert all(i.startswith("dev-") for i in ids[:4])
        assert await sending.deliveries.run_due() == 0


async def test_a_restart_mid_retry_goes_on_from_the_device_cursor(
    config: DomainConfig, clock: FakeClock
) -> None:
    async with receiver() as got:
        first = await Services.open(config, ConnectionRegistry(), clock=clock, background=False)
        first.deliveries.sender = WebhookClient(allow_private=True, timeout_s=TIMEOUT_S)
        try:
            await first.webhooks.create("h1", got.url, ["device.*"], None)
            got.statuses = [502]
            await device_status(first, "d1", "online")
            await device_status(first, "d2", "online")
            assert await first.deliveries.run_due() == 1
        finally:
            await first.deliveries.sender.close()
            await first.close()
        clock.advance(1.0)
        second = await Services.open(config, ConnectionRegistry(), clock=clock, background=False)
        second.deliveries.sender = WebhookClient(allow_private=True, timeout_s=TIMEOUT_S)
        try:
            assert await second.deliveries.run_due() == 2
            await device_status(second, "d1", "maintenance")
            assert await second.deliveries.run_due() == 1
        finally:
            await second.deliveries.sender.close()
            await second.close()
        assert statuses(got) == [
            ("d1", "online"),
            ("d1", "online"),
            ("d2", "online"),
            ("d1", "maintenance"),
        ]


async def test_exactly_one_node_sends_device_events_for_an_endpoint(
    sending: Services, clock: FakeClock
) -> None:
    hub = MemoryHub()
    nodes = [
        WebhookDeliverer(
            sending.store,
            sending.integrations,
            InMemoryClusterState(f"n{i}", hub),
            clock,
            devices=sending.vitals.store,
        )
        for i in range(3)
    ]
    for node in nodes:
        node.sender = WebhookClient(allow_private=True, timeout_s=TIMEOUT_S)
    try:
        async with receiver() as got:
            await sending.webhooks.create("h1", got.url, ["device.*"], None)
            for n in range(5):
                await device_status(sending, f"d{n}", "online")
            made = await asyncio.gather(*(node.run_due() for node in nodes))
            assert sorted(made) == [0, 0, 5]
            assert statuses(got) == [(f"d{n}", "online") for n in range(5)]
    finally:
        for node in nodes:
            await node.stop()


async def test_the_silence_watcher_marking_a_device_offline_is_sent(
    sending: Services, clock: FakeClock
) -> None:
    async with receiver() as got:
        await sending.webhooks.create("h1", got.url, ["device.*"], None)
        await device_status(sending, "d1", "online")
        clock.advance(sending.config.device_silence_s + 1)
        (alert,) = await sending.vitals.check_silence()
        assert alert.type == "device.offline"
        assert await sending.deliveries.run_due() == 2
        assert statuses(got) == [("d1", "online"), ("d1", "offline")]
        assert await sending.vitals.check_silence() == []  # once
        assert await sending.deliveries.run_due() == 0
