"""Outbound webhooks on a real server (CONTRACT 9): the `webhooks.*` procedures in both
dialects, and an alert raised through an inbound webhook reaching a registered endpoint,
signed, by the server's own delivery loop."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import orjson
import pytest

from rpc import signatures
from tests.integration.harness import RpcClient, running_server, token
from tests.integration.test_webhooks_inbound import ADMIN, Api, alert_body
from tests.polling import until
from tests.services.webhook_receiver import Receiver, receiver


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    server = running_server(tmp_path, WEBHOOK_ALLOW_PRIVATE="1")
    async with server as running, aiohttp.ClientSession() as http:
        yield Api(running, http)


@pytest.fixture
async def hook_receiver() -> AsyncIterator[Receiver]:
    async with receiver() as got:
        yield got


async def test_an_inbound_alert_goes_out_to_the_endpoint_signed(
    api: Api, hook_receiver: Receiver
) -> None:
    status, created = await api.trpc(
        "webhooks.create",
        {"hospitalId": "h1", "url": hook_receiver.url, "events": ["alert.created"]},
    )
    assert status == 200, created
    hook = created["result"]["data"]
    assert hook["secret"].startswith("whsec_")
    assert hook["enabled"] is True
    key = (await api.new_key())["key"]
    status, alert = await api.post("alerts", alert_body(), key)
    assert status == 201
    await until(lambda: len(hook_receiver.requests) == 1, "the delivery")
    (request,) = hook_receiver.requests
    event = orjson.loads(request.body)
    assert event["type"] == "alert.created"
    assert event["alert"] == alert
    assert request.headers["X-Alertwire-Event-Id"] == event["id"]
    stamp = int(request.headers[signatures.HEADER].split(",")[0][2:])
    assert (
        signatures.verify(hook["secret"], request.headers[signatures.HEADER], request.body, stamp)
        is None
    )

    async def recorded() -> bool:
        _, answer = await api.trpc("webhooks.deliveries", {"webhookId": hook["webhookId"]})
        return len(answer["result"]["data"]) == 1

    await until(recorded, "the attempt to be recorded")
    reply = await api.jsonrpc("webhooks.deliveries", {"webhookId": hook["webhookId"]})
    (delivery,) = reply["result"]
    assert delivery["eventId"] == event["id"]
    assert (delivery["status"], delivery["attempt"], delivery["httpStatus"]) == (
        "delivered",
        1,
        200,
    )


async def test_list_and_delete_never_show_the_secret(api: Api, hook_receiver: Receiver) -> None:
    reply = await api.jsonrpc(
        "webhooks.create",
        {
            "hospitalId": "h1",
            "url": hook_receiver.url,
            "events": ["alert.*"],
            "description": "pager",
        },
    )
    created = reply["result"]
    status, listed = await api.trpc("webhooks.list", {"hospitalId": "h1"})
    assert status == 200
    (item,) = listed["result"]["data"]
    assert "secret" not in item
    assert created["secret"] not in orjson.dumps(listed).decode()
    assert item["description"] == "pager"
    status, deleted = await api.trpc("webhooks.delete", {"webhookId": created["webhookId"]})
    assert (status, deleted["result"]["data"]) == (200, {"deleted": True})
    status, listed = await api.trpc("webhooks.list", {"hospitalId": "h1"})
    assert listed["result"]["data"] == []
    reply = await api.jsonrpc("webhooks.delete", {"webhookId": created["webhookId"]})
    assert reply["error"]["data"]["code"] == "NOT_FOUND"


async def test_only_admins_of_the_hospital_manage_webhooks(
    api: Api, hook_receiver: Receiver
) -> None:
    body = {"hospitalId": "h1", "url": hook_receiver.url, "events": ["alert.*"]}
    for role in ("nurse", "physician", "charge_nurse", "service"):
        assert (await api.trpc("webhooks.create", body, token("u", role, ["h1"])))[0] == 403
    other = token("admin-2", "admin", ["h2"])
    assert (await api.trpc("webhooks.create", body, other))[0] == 403
    _, created = await api.trpc("webhooks.create", body, ADMIN)
    webhook_id = created["result"]["data"]["webhookId"]
    for path in ("webhooks.delete", "webhooks.deliveries"):
        assert (await api.trpc(path, {"webhookId": webhook_id}, other))[0] == 403
    assert (await api.trpc("webhooks.list", {"hospitalId": "h1"}, other))[0] == 403


async def test_bad_inputs_are_field_errors(api: Api) -> None:
    reply = await api.jsonrpc(
        "webhooks.create", {"hospitalId": "h1", "url": "ftp://x.example/", "events": ["alert.*"]}
    )
    assert reply["error"]["code"] == -32602
    assert set(reply["error"]["data"]["fieldErrors"]) == {"url"}
    reply = await api.jsonrpc(
        "webhooks.create", {"hospitalId": "h1", "url": "https://x.example/", "events": ["nope"]}
    )
    assert "events.0" in reply["error"]["data"]["fieldErrors"]


async def test_without_allow_private_a_local_url_is_refused(tmp_path: Path) -> None:
    server = running_server(tmp_path)
    async with server as running, aiohttp.ClientSession() as http:
        api = Api(running, http)
        status, body = await api.trpc(
            "webhooks.create",
            {"hospitalId": "h1", "url": "https://127.0.0.1:9/hook", "events": ["alert.*"]},
        )
        assert status == 400
        assert set(body["error"]["data"]["fieldErrors"]) == {"url"}


async def test_a_device_status_reported_over_websocket_reaches_a_device_endpoint(
    api: Api, hook_receiver: Receiver
) -> None:
    status, created = await api.trpc(
        "webhooks.create",
        {"hospitalId": "h1", "url": hook_receiver.url, "events": ["device.*"]},
    )
    assert status == 200, created
    hook = created["result"]["data"]
    assert hook["events"] == ["device.*"]
    async with receiver() as alerts_only, aiohttp.ClientSession() as http:
        reply = await api.jsonrpc(
            "webhooks.create",
            {"hospitalId": "h1", "url": alerts_only.url, "events": ["alert.*"]},
        )
        assert "result" in reply, reply
        gateway = await RpcClient.connect(http, api.running, token("gw-1", "service", ["h1"]))
        for state in ("online", "offline"):
            await gateway.call(
                "devices.reportStatus",
                {"hospitalId": "h1", "deviceId": "mon-1", "status": state, "patientId": "p1"},
            )
        await gateway.close()
        await until(lambda: len(hook_receiver.requests) == 2, "the device events")
        await until(lambda: len(alerts_only.requests) >= 1, "the device.offline alert")
        events = [orjson.loads(r.body) for r in hook_receiver.requests]
        assert [(e["type"], e["device"]["deviceId"], e["device"]["status"]) for e in events] == [
            ("device.status", "mon-1", "online"),
            ("device.status", "mon-1", "offline"),
        ]
        for request, event in zip(hook_receiver.requests, events, strict=True):
            assert request.headers["X-Alertwire-Event-Id"] == event["id"]
            assert event["id"].startswith("dev-")
            stamp = int(request.headers[signatures.HEADER].split(",")[0][2:])
            header = request.headers[signatures.HEADER]
            assert signatures.verify(hook["secret"], header, request.body, stamp) is None
        sent = [orjson.loads(r.body) for r in alerts_only.requests]
        assert {e["type"] for e in sent} == {"alert.created"}
        assert sent[0]["alert"]["type"] == "device.offline"

    async def recorded() -> bool:
        _, answer = await api.trpc("webhooks.deliveries", {"webhookId": hook["webhookId"]})
        return len(answer["result"]["data"]) == 2

    await until(recorded, "the attempts to be recorded")
    reply = await api.jsonrpc("webhooks.deliveries", {"webhookId": hook["webhookId"]})
    assert [d["eventId"] for d in reversed(reply["result"])] == [e["id"] for e in events]


async def test_an_unknown_event_filter_is_a_field_error(api: Api) -> None:
    reply = await api.jsonrpc(
        "webhooks.create",
        {"hospitalId": "h1", "url": "https://x.example/", "events": ["device.battery"]},
    )
    assert reply["error"]["code"] == -32602
    assert any(key.startswith("events") for key in reply["error"]["data"]["fieldErrors"])
