"""API keys and inbound webhooks on a real server (CONTRACT 9): the `apiKeys.*` procedures in
both dialects, and every answer of POST /api/webhooks/<name>."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from routers.app import app_router
from rpc import signatures
from server.main import Running
from tests.integration.harness import running_server, token
from tests.polling import until

ADMIN = token("admin-1", "admin", ["h1"])


def alert_body(hospital: str = "h1", title: str = "Bed 4 call button") -> dict[str, Any]:
    return {"hospitalId": hospital, "type": "call_button", "priority": "high", "title": title}


@dataclass
class Api:
    running: Running
    http: aiohttp.ClientSession

    async def trpc(self, path: str, input: Any, bearer: str = ADMIN) -> tuple[int, Any]:
        """A tRPC call over HTTP (mutations POST, the two list queries GET)."""
        url = f"{self.running.base_url}/api/trpc/{path}"
        headers = {"Authorization": f"Bearer {bearer}"}
        if path.endswith((".list", ".deliveries", ".listAlerts")):
            query = {"input": orjson.dumps(input).decode()}
            async with self.http.get(url, params=query, headers=headers) as resp:
                return resp.status, await resp.json()
        async with self.http.post(url, json=input, headers=headers) as resp:
            return resp.status, await resp.json()

    async def jsonrpc(self, method: str, params: Any, bearer: str = ADMIN) -> dict[str, Any]:
        request = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
        async with self.http.post(
            f"{self.running.base_url}/api/trpc",
            json=request,
            headers={"Authorization": f"Bearer {bearer}"},
        ) as resp:
            reply: dict[str, Any] = await resp.json()
            return reply

    async def new_key(
        self, scopes: list[str] | None = None, signed: bool = False
    ) -> dict[str, Any]:
        status, body = await self.trpc(
            "apiKeys.create",
            {
                "hospitalId": "h1",
                "name": "nurse call",
                "scopes": scopes or ["alerts:write"],
                "signed": signed,
            },
        )
        assert status == 200, body
        created: dict[str, Any] = body["result"]["data"]
        return created

    async def post(
        self,
        name: str,
        body: bytes | dict[str, Any],
        key: str | None,
        *,
        header: str = "Authorization",
        extra: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        raw = body if isinstance(body, bytes) else orjson.dumps(body)
        headers = {"Content-Type": "application/json", **(extra or {})}
        if key is not None:
            headers[header] = f"Bearer {key}" if header == "Authorization" else key
        async with self.http.post(
            f"{self.running.base_url}/api/webhooks/{name}", data=raw, headers=headers
        ) as resp:
            text = await resp.read()
            assert resp.headers["Content-Type"].startswith("application/json")
            assert b"Traceback" not in text
            return resp.status, orjson.loads(text)

    async def alert_count(self) -> int:
        status, body = await self.trpc("healthcare.listAlerts", {"hospitalId": "h1"})
        assert status == 200
        return len(body["result"]["data"]["items"])


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    async with running_server(tmp_path) as running, aiohttp.ClientSession() as http:
        yield Api(running, http)


# --- apiKeys.* ------------------------------------------------------------------------------


async def test_a_key_is_shown_once_and_listed_by_prefix_only(api: Api) -> None:
    created = await api.new_key(["alerts:write", "vitals:write"])
    key = created["key"]
    assert key.startswith("awk_")
    assert len(key) >= 4 + 43
    assert created["signingSecret"] is None
    status, listed = await api.trpc("apiKeys.list", {"hospitalId": "h1"})
    assert status == 200
    (item,) = listed["result"]["data"]
    assert item["keyId"] == created["keyId"]
    assert key.startswith(item["prefix"])
    assert item["scopes"] == ["alerts:write", "vitals:write"]
    assert item["signed"] is False
    assert item["lastUsedAt"] is None
    assert key not in orjson.dumps(listed).decode()
    # The JSON-RPC dialect answers the same.
    reply = await api.jsonrpc("apiKeys.list", {"hospitalId": "h1"})
    assert reply["result"] == listed["result"]["data"]


async def test_only_admins_of_the_hospital_manage_keys(api: Api) -> None:
    body = {"hospitalId": "h1", "name": "x", "scopes": ["alerts:write"]}
    for role in ("nurse", "physician", "charge_nurse", "service"):
        status, _ = await api.trpc("apiKeys.create", body, token("u", role, ["h1"]))
        assert status == 403, role
    other_admin = token("admin-2", "admin", ["h2"])
    assert (await api.trpc("apiKeys.create", body, other_admin))[0] == 403
    assert (await api.trpc("apiKeys.list", {"hospitalId": "h1"}, other_admin))[0] == 403
    created = await api.new_key()
    status, _ = await api.trpc("apiKeys.revoke", {"keyId": created["keyId"]}, other_admin)
    assert status == 403
    reply = await api.jsonrpc("apiKeys.revoke", {"keyId": "key_unknown"})
    assert reply["error"]["data"]["code"] == "NOT_FOUND"
    bad = await api.jsonrpc("apiKeys.create", {**body, "scopes": ["alerts:read"]})
    assert "scopes.0" in bad["error"]["data"]["fieldErrors"]


async def test_last_use_is_recorded(api: Api) -> None:
    created = await api.new_key()
    assert (await api.post("alerts", alert_body(), created["key"]))[0] == 201

    async def used() -> bool:
        _, listed = await api.trpc("apiKeys.list", {"hospitalId": "h1"})
        return listed["result"]["data"][0]["lastUsedAt"] is not None

    await until(used, "lastUsedAt to be recorded")


# --- POST /api/webhooks/<name> --------------------------------------------------------------


async def test_an_alert_is_created_with_either_header(api: Api) -> None:
    key = (await api.new_key())["key"]
    status, body = await api.post("alerts", alert_body(), key)
    assert status == 201
    assert body["status"] == "active"
    assert body["createdBy"].startswith("apikey:key_")
    status, _ = await api.post("alerts", alert_body(), key, header="X-Api-Key")
    assert status == 201
    assert await api.alert_count() == 2


async def test_invalid_input_is_400_with_field_errors(api: Api) -> None:
    key = (await api.new_key())["key"]
    status, body = await api.post("alerts", {"hospitalId": "h1", "type": "x"}, key)
    assert status == 400
    assert body["error"]["code"] == "BAD_REQUEST"
    assert {"priority", "title"} <= set(body["error"]["fieldErrors"])
    status, body = await api.post("alerts", alert_body(title="a\u202eb"), key)
    assert status == 400
    assert "title" in body["error"]["fieldErrors"]
    status, body = await api.post("alerts", b"{not json", key)
    assert status == 400
    assert body["error"]["code"] == "BAD_REQUEST"
    assert await api.alert_count() == 0


async def test_missing_unknown_and_revoked_keys_are_401(api: Api) -> None:
    created = await api.new_key()
    status, body = await api.post("alerts", alert_body(), None)
    assert status == 401
    assert body["error"]["code"] == "UNAUTHORIZED"
    status, body = await api.post("alerts", alert_body(), "awk_" + "A" * 43)
    assert status == 401
    status, body = await api.post("alerts", alert_body(), "not-a-key")
    assert status == 401
    assert created["key"] not in orjson.dumps(body).decode()
    assert (await api.post("alerts", alert_body(), created["key"]))[0] == 201
    status, revoked = await api.trpc("apiKeys.revoke", {"keyId": created["keyId"]})
    assert status == 200
    assert revoked["result"]["data"] == {"revoked": True}
    status, body = await api.post("alerts", alert_body(), created["key"])
    assert status == 401
    _, listed = await api.trpc("apiKeys.list", {"hospitalId": "h1"})
    assert listed["result"]["data"] == []


async def test_another_hospital_or_a_missing_scope_is_403(api: Api) -> None:
    key = (await api.new_key(["alerts:write"]))["key"]
    status, body = await api.post("alerts", alert_body("h2"), key)
    assert status == 403
    assert body["error"]["code"] == "FORBIDDEN"
    vitals_only = (await api.new_key(["vitals:write"]))["key"]
    status, body = await api.post("alerts", alert_body(), vitals_only)
    assert status == 403
    assert "alerts:write" in body["error"]["message"]
    assert await api.alert_count() == 0


async def test_a_path_without_its_procedure_is_404(api: Api) -> None:
    key = (await api.new_key(["alerts:write", "vitals:write", "devices:write"]))["key"]
    assert (await api.post("nothing", {}, key))[0] == 404
    async with api.http.get(f"{api.running.base_url}/api/webhooks/alerts") as resp:
        assert resp.status == 405
        assert resp.headers["Allow"] == "POST"
        assert (await resp.json())["error"]["code"] == "METHOD_NOT_SUPPORTED"
    for name, procedure in (("vitals", "vitals.report"), ("devices", "devices.reportStatus")):
        if app_router.get(procedure) is None:  # live once the procedure is declared
            status, body = await api.post(name, {}, key)
            assert status == 404
            assert body["error"]["code"] == "NOT_FOUND"


async def test_an_idempotent_repeat_gets_the_first_answer_and_changes_nothing(api: Api) -> None:
    key = (await api.new_key())["key"]
    headers = {"Idempotency-Key": "call-123"}
    first = await api.post("alerts", alert_body(), key, extra=headers)
    again = await api.post("alerts", alert_body(), key, extra=headers)
    assert first[0] == again[0] == 201
    assert first[1] == again[1]
    assert await api.alert_count() == 1
    status, body = await api.post("alerts", alert_body(title="other"), key, extra=headers)
    assert status == 409
    assert body["error"]["code"] == "CONFLICT"
    for bad in ("", "x" * 129):
        status, body = await api.post("alerts", alert_body(), key, extra={"Idempotency-Key": bad})
        assert status == 400
        assert "Idempotency-Key" in body["error"]["fieldErrors"]
    assert await api.alert_count() == 1


async def test_signed_keys_need_a_fresh_matching_signature(api: Api) -> None:
    created = await api.new_key(signed=True)
    key, secret = created["key"], created["signingSecret"]
    assert secret
    raw = orjson.dumps(alert_body())
    now = int(time.time())

    async def post(header: str | None, body: bytes = raw) -> int:
        extra = {signatures.HEADER: header} if header is not None else {}
        return (await api.post("alerts", body, key, extra=extra))[0]

    assert await post(signatures.sign(secret, now, raw)) == 201
    assert await post(None) == 401
    assert await post(signatures.sign(secret, now - 301, raw)) == 401  # stale
    assert await post(signatures.sign(secret, now + 301, raw)) == 401  # from the future
    assert await post(signatures.sign(secret, now, raw), raw.replace(b"high", b"low")) == 401
    assert await post(signatures.sign("wrong", now, raw)) == 401
    assert await post("t=abc,v1=00") == 401
    rotated = f"t={now},v1={'0' * 64},v1={signatures.digest(secret, now, raw)}"
    assert await post(rotated) == 201
    assert await post(signatures.sign(secret, now - 290, raw)) == 201
    assert await api.alert_count() == 3


async def test_a_body_over_the_limit_is_413(tmp_path: Path) -> None:
    server = running_server(tmp_path, MAX_MESSAGE_BYTES="4096")
    async with server as running, aiohttp.ClientSession() as http:
        api = Api(running, http)
        key = (await api.new_key())["key"]
        big = alert_body()
        big["message"] = "x" * 5000
        status, body = await api.post("alerts", big, key)
        assert status == 413
        assert body["error"]["code"] == "PAYLOAD_TOO_LARGE"


async def test_the_rate_limit_counts_per_key(tmp_path: Path) -> None:
    server = running_server(tmp_path, RATE_LIMIT_PER_10S="3")
    async with server as running, aiohttp.ClientSession() as http:
        api = Api(running, http)
        first = (await api.new_key())["key"]
        second = (await api.new_key())["key"]
        answers = [(await api.post("alerts", alert_body(), first))[0] for _ in range(4)]
        assert answers == [201, 201, 201, 429]
        status, body = await api.post("alerts", alert_body(), first)
        assert status == 429
        assert body["error"]["code"] == "TOO_MANY_REQUESTS"
        assert (await api.post("alerts", alert_body(), second))[0] == 201


async def test_concurrent_repeats_of_one_key_make_one_alert(api: Api) -> None:
    key = (await api.new_key())["key"]
    headers = {"Idempotency-Key": "burst-1"}
    answers = await asyncio.gather(
        *(api.post("alerts", alert_body(), key, extra=headers) for _ in range(6))
    )
    assert {status for status, _ in answers} == {201}
    assert len({orjson.dumps(body) for _, body in answers}) == 1
    assert await api.alert_count() == 1


async def test_keys_and_secrets_reach_no_log_and_no_metric(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    created = await api.new_key(signed=True)
    key, secret = created["key"], created["signingSecret"]
    raw = orjson.dumps(alert_body())
    signed = {signatures.HEADER: signatures.sign(secret, int(time.time()), raw)}
    assert (await api.post("alerts", raw, key, extra=signed))[0] == 201
    assert (await api.post("alerts", raw, key))[0] == 401  # unsigned
    assert (await api.post("alerts", raw, key[:-2] + "xx", extra=signed))[0] == 401
    await api.trpc("apiKeys.revoke", {"keyId": created["keyId"]})
    assert (await api.post("alerts", raw, key, extra=signed))[0] == 401
    async with api.http.get(f"{api.running.base_url}/metrics") as resp:
        metrics = await resp.text()
    assert 'alertwire_auth_failures_total{reason="api_key"}' in metrics
    assert f"API key {created['keyId']} revoked" in caplog.text  # the logs were captured
    for text in (caplog.text, metrics):
        assert key not in text
        assert key[:-2] not in text
        assert secret not in text
