"""`rpc.discover` needs a token when ALERTWIRE_ENV=production (CONTRACT 5a): the transport
passes the flag in the AuthConfig it already hands every session. In development it stays
public."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from tests.conftest import AUTH, make_state, make_token
from tests.integration.harness import running_server, token
from tests.rpc import demo
from tests.rpc.wire import Client, call, serve

DISCOVER = b'{"jsonrpc":"2.0","method":"rpc.discover","id":1}'


async def post(client: Client, bearer: str | None = None) -> dict[str, Any]:
    headers = {"Content-Type": "application/json"}
    if bearer is not None:
        headers["Authorization"] = f"Bearer {bearer}"
    resp = await client.post("/api/trpc", data=DISCOVER, headers=headers)
    return dict(orjson.loads(await resp.read()))


def assert_unauthorized(reply: dict[str, Any], message: str) -> None:
    assert "result" not in reply
    assert reply["error"]["data"]["code"] == "UNAUTHORIZED"
    assert reply["error"]["message"] == message


def protected() -> Any:
    state = make_state(demo.Feed())
    state.auth = replace(AUTH, discovery_needs_token=True)
    return state


async def test_with_the_flag_an_anonymous_http_call_is_unauthorized() -> None:
    async with serve(protected()) as client:
        assert_unauthorized(await post(client), "Authentication required")
        assert_unauthorized(await post(client, make_token(ttl=-60)), "Token expired")
        assert_unauthorized(await post(client, "not-a-token"), "Token malformed")
        reply = await post(client, make_token())
        assert reply["result"]["openrpc"].startswith("1.")


async def test_with_the_flag_a_websocket_must_authenticate_first() -> None:
    async with serve(protected()) as client:
        ws = await client.ws_connect("/api/trpc")
        assert_unauthorized(await call(ws, "rpc.discover"), "Authentication required")
        assert "result" in await call(ws, "auth.authenticate", {"token": make_token()}, id=2)
        assert "methods" in (await call(ws, "rpc.discover", id=3))["result"]
        await ws.close()


async def test_without_the_flag_discovery_is_public() -> None:
    async with serve(make_state(demo.Feed())) as client:
        reply = await post(client)
        assert "system.ping" in {m["name"] for m in reply["result"]["methods"]}


async def test_the_production_server_wants_a_token_and_development_does_not(
    tmp_path: Path,
) -> None:
    for env, public in (("production", False), ("development", True)):
        async with (
            running_server(tmp_path / env, ALERTWIRE_ENV=env) as running,
            aiohttp.ClientSession() as http,
        ):
            url = f"{running.base_url}/api/trpc"
            async with http.post(url, data=DISCOVER) as resp:
                reply = await resp.json()
            if public:
                assert "methods" in reply["result"]
            else:
                assert_unauthorized(reply, "Authentication required")
                headers = {"Authorization": f"Bearer {token()}"}
                async with http.post(url, data=DISCOVER, headers=headers) as resp:
                    assert "methods" in (await resp.json())["result"]
