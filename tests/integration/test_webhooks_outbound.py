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
from tests.integration.harness import running_server, token
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
