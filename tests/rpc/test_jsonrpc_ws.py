"""JSON-RPC 2.0 subscriptions and authentication on the WebSocket (CONTRACT 3a and 5)."""

from __future__ import annotations

import time
from typing import Any

import orjson
from aiohttp import ClientWebSocketResponse, WSMsgType
from aiohttp.test_utils import TestClient, TestServer

from rpc.auth import AuthConfig, issue_token
from rpc.limits import Limits
from rpc.transport_aiohttp import create_app
from tests.conftest import SECRET, TokenFactory, make_state
from tests.rpc import demo

Client = TestClient[Any, Any]


async def call(ws: ClientWebSocketResponse, method: str, params: Any = None, id: Any = 1) -> Any:
    request: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "id": id}
    if params is not None:
        request["params"] = params
    await ws.send_str(orjson.dumps(request).decode())
    return orjson.loads((await ws.receive(timeout=5)).data)


async def next_frame(ws: ClientWebSocketResponse) -> Any:
    msg = await ws.receive(timeout=5)
    assert msg.type is WSMsgType.TEXT, msg
    return orjson.loads(msg.data)


async def authed(client: Client, token: str) -> ClientWebSocketResponse:
    ws = await client.ws_connect("/api/trpc")
    reply = await call(ws, "auth.authenticate", {"token": token}, id="auth")
    assert "result" in reply, reply
    return ws


async def test_subscription_events_stop_and_end(
    client: Client, token: TokenFactory, feed: demo.Feed
) -> None:
    ws = await authed(client, token())
    reply = await call(ws, "demo.feed", {"hospitalId": "h1"}, id=2)
    assert reply == {"jsonrpc": "2.0", "id": 2, "result": {"subscription": "s1"}}
    # live from the reply: an event committed right after it is delivered
    event_id = feed.publish("h1")
    assert await next_frame(ws) == {
        "jsonrpc": "2.0",
        "method": "subscription",
        "params": {"subscription": "s1", "id": event_id, "data": {"hospitalId": "h1", "seq": 1}},
    }
    assert await call(ws, "subscription.stop", {"subscription": "s1"}, id=3) == {
        "jsonrpc": "2.0",
        "id": 3,
        "result": True,
    }
    assert await call(ws, "subscription.stop", {"subscription": "s1"}, id=4) == {
        "jsonrpc": "2.0",
        "id": 4,
        "result": False,
    }
    assert not feed.streams
    reply = await call(ws, "demo.ticks", {"count": 1}, id=5)
    sid = reply["result"]["subscription"]
    assert (await next_frame(ws))["params"] == {"subscription": sid, "data": {"n": 0}}
    assert await next_frame(ws) == {
        "jsonrpc": "2.0",
        "method": "subscription.end",
        "params": {"subscription": sid},
    }
    reply = await call(ws, "demo.ticks", {"count": 2, "failAt": 0}, id=6)
    end = await next_frame(ws)
    assert end["method"] == "subscription.end"
    assert end["params"]["error"]["data"]["code"] == "TOO_MANY_REQUESTS"
    await ws.close()


async def test_replay_from_last_event_id_in_params(
    client: Client, token: TokenFactory, feed: demo.Feed
) -> None:
    ids = [feed.publish("h1") for _ in range(5)]
    ws = await authed(client, token())
    await call(ws, "demo.feed", {"hospitalId": "h1", "lastEventId": ids[1]}, id=2)
    got = [(await next_frame(ws))["params"]["id"] for _ in range(3)]
    assert got == ids[2:]
    await ws.close()


async def test_forbidden_hospital_and_subscription_cap(token: TokenFactory) -> None:
    state = make_state(demo.Feed(), Limits(max_subscriptions_per_connection=2))
    async with TestClient(TestServer(create_app(state))) as client:
        ws = await authed(client, token(hospitals=["h1"]))
        reply = await call(ws, "demo.feed", {"hospitalId": "h2"}, id=1)
        assert reply["error"]["code"] == -32003
        assert reply["error"]["data"] == {
            "code": "FORBIDDEN",
            "httpStatus": 403,
            "path": "demo.feed",
        }
        for n in range(2):
            assert "result" in await call(ws, "demo.feed", {"hospitalId": "h1"}, id=10 + n)
        reply = await call(ws, "demo.feed", {"hospitalId": "h1"}, id=12)
        assert reply["error"]["data"]["code"] == "TOO_MANY_REQUESTS"
        await ws.close()


async def test_refresh_with_fewer_hospitals_ends_those_subscriptions(
    client: Client, token: TokenFactory
) -> None:
    ws = await authed(client, token(hospitals=["h1", "h2"]))
    sid1 = (await call(ws, "demo.feed", {"hospitalId": "h1"}, id=1))["result"]["subscription"]
    sid2 = (await call(ws, "demo.feed", {"hospitalId": "h2"}, id=2))["result"]["subscription"]
    await ws.send_str(
        orjson.dumps(
            {
                "jsonrpc": "2.0",
                "method": "auth.authenticate",
                "params": {"token": token(hospitals=["h1"])},
                "id": 3,
            }
        ).decode()
    )
    end = await next_frame(ws)  # ended before the refresh is confirmed
    assert end["method"] == "subscription.end"
    assert end["params"]["subscription"] == sid2
    assert end["params"]["error"]["data"]["code"] == "FORBIDDEN"
    assert (await next_frame(ws))["result"]["hospitals"] == ["h1"]
    assert await call(ws, "subscription.stop", {"subscription": sid1}, id=4) == {
        "jsonrpc": "2.0",
        "id": 4,
        "result": True,
    }
    reply = await call(ws, "auth.authenticate", {"token": token(sub="someone-else")}, id=5)
    assert reply["error"]["data"]["code"] == "FORBIDDEN"
    await ws.close()


async def test_expiry_ends_subscriptions_and_closes_4001() -> None:
    auth = AuthConfig(SECRET, leeway_seconds=0)
    state = make_state(demo.Feed())
    state.auth = auth
    async with TestClient(TestServer(create_app(state))) as client:
        # exp is a whole second: this token expires 0.5 to 1.5 s from now
        short = issue_token(
            auth, sub="n", role="nurse", hospitals=["h1"], ttl_seconds=1.5, now=time.time()
        )
        ws = await authed(client, short)
        await call(ws, "demo.feed", {"hospitalId": "h1"}, id=1)
        end = await next_frame(ws)
        assert end["method"] == "subscription.end"
        assert end["params"]["error"]["data"]["code"] == "UNAUTHORIZED"
        assert end["params"]["error"]["message"] == "Token expired"
        msg = await ws.receive(timeout=5)
        assert msg.type is WSMsgType.CLOSE
        assert msg.data == 4001
        assert msg.extra == "Token expired"
    assert state.metrics.token_expiries.get() == 1
    assert state.metrics.subscriptions_open.get() == 0


async def test_refresh_before_expiry_keeps_the_socket_open() -> None:
    auth = AuthConfig(SECRET, leeway_seconds=0)
    state = make_state(demo.Feed())
    state.auth = auth
    async with TestClient(TestServer(create_app(state))) as client:
        ws = await client.ws_connect("/api/trpc")
        short = issue_token(
            auth, sub="n", role="nurse", hospitals=["h1"], ttl_seconds=1.5, now=time.time()
        )
        await call(ws, "auth.authenticate", {"token": short}, id=1)
        fresh = issue_token(
            auth, sub="n", role="nurse", hospitals=["h1"], ttl_seconds=600, now=time.time()
        )
        await call(ws, "auth.authenticate", {"token": fresh}, id=2)
        assert state.sessions
        (session,) = state.sessions
        assert session._expiry is not None
        assert session._expiry.when() - session._expiry._loop.time() > 500  # type: ignore[attr-defined]
        # A second socket with the same short token expires; by then the first one's old
        # expiry has passed too, and it is still open.
        other = await authed(client, short)
        assert (await other.receive(timeout=5)).data == 4001
        assert (await call(ws, "system.whoami", id=3))["result"]["sub"] == "n"
        await ws.close()
    assert state.metrics.token_expiries.get() == 1


async def test_bad_token_at_handshake_is_401(client: Client) -> None:
    resp = await client.get(
        "/api/trpc?token=garbage",
        headers={
            "Connection": "Upgrade",
            "Upgrade": "websocket",
            "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        },
    )
    assert resp.status == 401
    body = await resp.json()
    assert body["error"]["data"]["code"] == "UNAUTHORIZED"
    assert "garbage" not in await resp.text()
