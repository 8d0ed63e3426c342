"""Every kind of response the API gives says `Cache-Control: no-store` (patient data is never
cached on the way) and `X-Content-Type-Options: nosniff`, and no `Server` header names a
version (CONTRACT 5a), down to the refusals written before any handler runs."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import aiohttp
import pytest

from server.main import Running
from tests.integration.attack_kit import Raw, alert_input, attack_server, request
from tests.integration.harness import token
from tests.rpc.wire import UPGRADE, enc

JSON = {"Content-Type": "application/json"}


def assert_safe(headers: Mapping[str, str], what: str) -> None:
    lowered = {name.lower(): value for name, value in headers.items()}
    assert lowered.get("cache-control") == "no-store", what
    assert lowered.get("x-content-type-options") == "nosniff", what
    server = lowered.get("server", "")
    assert not re.search(r"\d|aiohttp|python", server, re.IGNORECASE), (what, server)


def raw_headers(head: bytes) -> dict[str, str]:
    lines = head.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")[1:]
    return dict(line.split(": ", 1) for line in lines)


async def expect(
    http: aiohttp.ClientSession, method: str, url: str, status: int, **kwargs: object
) -> None:
    async with http.request(method, url, **kwargs) as resp:  # type: ignore[arg-type]
        assert resp.status == status, (method, url, await resp.text())
        assert_safe(resp.headers, f"{method} {url} -> {status}")


async def test_every_api_response_kind(tmp_path: Path) -> None:
    async with attack_server(tmp_path) as running, aiohttp.ClientSession() as http:
        base = running.base_url
        auth = {"Authorization": f"Bearer {token('nurse-1', 'nurse')}"}
        device = {**JSON, "Authorization": f"Bearer {token('device-1', 'service')}"}
        ping = {"jsonrpc": "2.0", "method": "system.ping", "id": 1}
        await expect(http, "GET", f"{base}/health", 200)
        await expect(http, "GET", f"{base}/metrics", 200)
        await expect(http, "POST", f"{base}/api/trpc", 200, json=ping, headers=auth)
        await expect(http, "GET", f"{base}/api/trpc/system.whoami", 200, headers=auth)
        await expect(
            http, "POST", f"{base}/api/trpc/healthcare.createAlert", 200,
            json=alert_input(1), headers=device,
        )  # fmt: skip
        batch = f"{base}/api/trpc/system.ping,system.whoami?batch=1"
        await expect(http, "GET", batch, 200, headers=auth)
        await expect(http, "GET", f"{base}/api/trpc/system.whoami", 401)
        await expect(http, "GET", f"{base}/no/such/page", 404)
        await expect(http, "POST", f"{base}/api/trpc", 413, data=b"[" * 20_000, headers=JSON)
        await expect(
            http, "OPTIONS", f"{base}/api/trpc", 204,
            headers={"Origin": "http://localhost:5173", "Access-Control-Request-Method": "POST"},
        )  # fmt: skip
        refused = {**UPGRADE, "Authorization": "Bearer not-a-token"}
        await expect(http, "GET", f"{base}/api/trpc", 401, headers=refused)
        sse = f"{base}/api/trpc/healthcare.subscribeToAlerts?input={enc({'hospitalId': 'h1'})}"
        async with http.get(sse, headers={**auth, "Accept": "text/event-stream"}) as stream:
            assert stream.status == 200
            assert stream.headers["Content-Type"].startswith("text/event-stream")
            assert_safe(stream.headers, "SSE")


async def test_the_guard_s_refusal_and_a_malformed_request(tmp_path: Path) -> None:
    async with attack_server(tmp_path, {"MAX_HTTP_CONNECTIONS": "1"}) as running:
        held = await Raw.open(running.port)
        await eventually_counted(running, 1)
        refused = await Raw.open(running.port)
        head = await refused.until_closed()
        assert head.startswith(b"HTTP/1.1 503 ")
        assert_safe(raw_headers(head), "the guard's 503")
        refused.close()
        await held.send(b"GET /\x00 nonsense\r\n\r\n")  # aiohttp's own 400, before the app
        head = await held.until_closed()
        assert head.split(b" ", 2)[1] == b"400"
        assert_safe(raw_headers(head), "a malformed request")
        held.close()


async def eventually_counted(running: Running, count: int) -> None:
    from tests.rpc.wire import eventually

    await eventually(lambda: running.state.guard.http_open == count, "the connection")


@pytest.mark.parametrize("path", ["/health", "/api/trpc/system.ping"])
async def test_head_requests_too(tmp_path: Path, path: str) -> None:
    async with attack_server(tmp_path) as running:
        raw = await Raw.open(running.port)
        await raw.send(request("HEAD", path))
        head = await raw.head()
        assert head.split(b" ", 2)[1] in (b"200", b"204"), head
        assert_safe(raw_headers(head), f"HEAD {path}")
        raw.close()
