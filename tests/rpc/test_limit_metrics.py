"""Every limit, breached once: the client gets a clear error and exactly the matching counter on
GET /metrics goes up (nothing else does). Runs in the hostile-input arena, so each breach is also
checked for containment."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import orjson
import pytest
from aiohttp import WSMsgType, WSServerHandshakeError

from rpc.auth import AuthConfig, issue_token
from rpc.limits import Limits
from rpc.transport_aiohttp import OriginPolicy
from tests.conftest import SECRET, make_token
from tests.rpc.arena import ATTACKER, Arena, arena, bearer, overflow_send_queue
from tests.rpc.test_metrics import parse
from tests.rpc.wire import call, enc, read_events, recv, recv_close, send_json

Series = tuple[str, str | None]


async def counters(a: Arena) -> dict[Series, float]:
    resp = await a.client.get("/metrics")
    return {k: v for k, v in parse(await resp.text()).items() if k[0].endswith("_total")}


async def ws_rate(a: Arena) -> None:
    ws = await a.connect()
    for n in range(3):
        assert (await call(ws, "system.ping", id=n))["result"] == "pong"
    reply = await call(ws, "system.ping", id=3)
    assert reply["error"]["message"] == "Rate limit exceeded (3 requests per 10 s)"


async def http_rate(a: Arena) -> None:
    statuses = [(await a.client.get("/api/trpc/system.ping")).status for _ in range(4)]
    assert statuses == [200, 200, 200, 429]


async def subscription_cap(a: Arena) -> None:
    ws = await a.connect()
    assert "result" in await call(ws, "demo.feed", {"hospitalId": "h1"})
    reply = await call(ws, "demo.feed", {"hospitalId": "h1"}, id=2)
    assert reply["error"]["message"] == "Too many subscriptions on this connection (limit 1)"


async def per_user_ws(a: Arena) -> None:
    token = make_token(sub=ATTACKER)
    await a.connect(token)
    with pytest.raises(WSServerHandshakeError) as refused:
        await a.client.ws_connect("/api/trpc", headers=bearer(token))
    assert refused.value.status == 429


async def _sse_error(a: Arena, token: str) -> dict[str, object]:
    url = f"/api/trpc/demo.ticks?connectionParams={enc({'token': token})}&input={enc({'count': 1})}"
    resp = await a.client.get(url, headers={"Accept": "text/event-stream"})
    connected, error = await read_events(resp, 2)
    assert connected["event"] == "connected"
    assert error["event"] == "serialized-error"
    assert await resp.content.read() == b""  # and the stream ends
    body = orjson.loads(error["data"])
    assert isinstance(body, dict)
    return body


async def per_user_sse(a: Arena) -> None:
    token = make_token(sub=ATTACKER)
    await a.connect(token)
    error = await _sse_error(a, token)
    assert error["message"] == "Too many connections for this user (limit 1); close one first"


async def capacity_ws(a: Arena) -> None:
    await a.connect()  # the bystander holds the other place
    with pytest.raises(WSServerHandshakeError) as refused:
        await a.client.ws_connect("/api/trpc", headers=bearer(make_token(sub="late")))
    assert refused.value.status == 503


async def capacity_sse(a: Arena) -> None:
    error = await _sse_error(a, make_token(sub=ATTACKER))
    assert error["message"] == "Server is at capacity"


async def oversize_ws(a: Arena) -> None:
    ws = await a.connect()
    await ws.send_str("x" * 1025)
    assert (await recv_close(ws)).data == 1009


async def oversize_http(a: Arena) -> None:
    resp = await a.client.post("/api/trpc", data=b"[" + b"1," * 600 + b"1]")
    assert resp.status == 413
    assert (await resp.json())["error"]["message"] == "Request body over 1024 bytes"


async def auth_timeout(a: Arena) -> None:
    ws = await a.anonymous()
    assert (await recv_close(ws)).data == 4001


async def token_expiry(a: Arena) -> None:
    assert a.state.auth is not None
    token = issue_token(  # exp is a whole second: 0.5 to 1.5 s from now
        a.state.auth, sub=ATTACKER, role="nurse", hospitals=["h1"], ttl_seconds=1.5, now=time.time()
    )
    ws = await a.connect(token)
    assert (await recv_close(ws)).data == 4001


async def send_queue(a: Arena) -> None:
    ws = await overflow_send_queue(a)
    while (await ws.receive(timeout=5)).type is WSMsgType.TEXT:
        pass  # what was written before the overflow
    assert ws.close_code == 4008


async def json_depth(a: Arena) -> None:
    ws = await a.connect()
    await ws.send_str("[" * 33 + "]" * 33)
    assert (await recv(ws))["error"]["message"] == "JSON nested too deeply (at most 32 levels)"


async def batch_cap(a: Arena) -> None:
    ws = await a.connect()
    await send_json(ws, [{"jsonrpc": "2.0", "method": "system.ping", "id": n} for n in range(101)])
    assert (await recv(ws))["error"]["message"] == "Batch too large (at most 100 requests)"


async def id_length(a: Arena) -> None:
    ws = await a.connect()
    reply = await call(ws, "system.ping", id="i" * 257)
    assert reply["error"]["message"] == "Request id too long (at most 256 characters)"


async def origin(a: Arena) -> None:
    a.state.origins = OriginPolicy(allowed=frozenset({"https://ward.example"}))
    with pytest.raises(WSServerHandshakeError) as refused:
        await a.client.ws_connect("/api/trpc", origin="https://evil.example")
    assert refused.value.status == 403


async def bad_token_at_handshake(a: Arena) -> None:
    with pytest.raises(WSServerHandshakeError) as refused:
        await a.client.ws_connect("/api/trpc", headers=bearer("forged"))
    assert refused.value.status == 401


@dataclass(frozen=True)
class Breach:
    limits: Limits
    run: Callable[[Arena], Awaitable[None]]
    expected: dict[Series, float]
    auth: AuthConfig | None = None


BREACHES = {
    "RATE_LIMIT_PER_10S on a socket": Breach(
        Limits(rate_per_10s=3), ws_rate, {("alertwire_rate_limited_total", "ws"): 1}
    ),
    "RATE_LIMIT_PER_10S over HTTP": Breach(
        Limits(rate_per_10s=3), http_rate, {("alertwire_rate_limited_total", "http"): 1}
    ),
    "MAX_SUBSCRIPTIONS_PER_CONNECTION": Breach(
        Limits(max_subscriptions_per_connection=1),
        subscription_cap,
        {("alertwire_subscriptions_refused_total", None): 1},
    ),
    "MAX_CONNECTIONS_PER_USER (WebSocket)": Breach(
        Limits(max_connections_per_user=1),
        per_user_ws,
        {("alertwire_connections_refused_total", "per_user"): 1},
    ),
    "MAX_CONNECTIONS_PER_USER (SSE)": Breach(
        Limits(max_connections_per_user=1),
        per_user_sse,
        {("alertwire_connections_refused_total", "per_user"): 1},
    ),
    "MAX_CONNECTIONS (WebSocket)": Breach(
        Limits(max_connections=2),
        capacity_ws,
        {("alertwire_connections_refused_total", "capacity"): 1},
    ),
    "MAX_CONNECTIONS (SSE)": Breach(
        Limits(max_connections=1),
        capacity_sse,
        {("alertwire_connections_refused_total", "capacity"): 1},
    ),
    "MAX_MESSAGE_BYTES (WebSocket)": Breach(
        Limits(max_message_bytes=1024),
        oversize_ws,
        {("alertwire_oversize_messages_total", "ws"): 1},
    ),
    "MAX_MESSAGE_BYTES (HTTP)": Breach(
        Limits(max_message_bytes=1024),
        oversize_http,
        {("alertwire_oversize_messages_total", "http"): 1},
    ),
    "AUTH_TIMEOUT_SECONDS": Breach(
        Limits(auth_timeout_s=0.1), auth_timeout, {("alertwire_auth_timeouts_total", None): 1}
    ),
    "token expiry": Breach(
        Limits(),
        token_expiry,
        {("alertwire_token_expiries_total", None): 1},
        AuthConfig(SECRET, leeway_seconds=0),
    ),
    "SEND_QUEUE_FRAMES": Breach(
        Limits(send_queue_frames=8),
        send_queue,
        {("alertwire_slow_consumer_closes_total", None): 1},
    ),
    "MAX_JSON_DEPTH": Breach(
        Limits(max_json_depth=32), json_depth, {("alertwire_bad_frames_total", "too_deep"): 1}
    ),
    "MAX_BATCH_SIZE": Breach(
        Limits(max_batch=100), batch_cap, {("alertwire_bad_frames_total", "batch_too_large"): 1}
    ),
    "request id length": Breach(Limits(), id_length, {("alertwire_bad_frames_total", "bad_id"): 1}),
    "ALLOWED_ORIGINS": Breach(
        Limits(), origin, {("alertwire_connections_refused_total", "origin"): 1}
    ),
    "bad token at the handshake": Breach(
        Limits(),
        bad_token_at_handshake,
        {
            ("alertwire_connections_refused_total", "auth"): 1,
            ("alertwire_auth_failures_total", "malformed"): 1,
        },
    ),
}


# What each breach adds to the client-error log's counter (one report per refusal).
CLIENT_ERROR_KIND = {
    "RATE_LIMIT_PER_10S on a socket": "rate_limited",
    "RATE_LIMIT_PER_10S over HTTP": "rate_limited",
    "MAX_CONNECTIONS_PER_USER (WebSocket)": "capacity",
    "MAX_CONNECTIONS_PER_USER (SSE)": "capacity",
    "MAX_CONNECTIONS (WebSocket)": "capacity",
    "MAX_CONNECTIONS (SSE)": "capacity",
    "MAX_MESSAGE_BYTES (WebSocket)": "too_large",
    "MAX_MESSAGE_BYTES (HTTP)": "too_large",
    "MAX_JSON_DEPTH": "too_large",
    "MAX_BATCH_SIZE": "too_large",
    "request id length": "bad_frame",
    "ALLOWED_ORIGINS": "origin",
    "bad token at the handshake": "auth",
}


@pytest.mark.parametrize("name", list(BREACHES))
async def test_each_breach_bumps_its_counter(name: str) -> None:
    breach = BREACHES[name]
    async with arena(breach.limits, breach.auth) as a:
        before = await counters(a)
        await breach.run(a)
        after = await counters(a)
        changed = {k: after[k] - before[k] for k in after if after[k] != before[k]}
        expected = dict(breach.expected)
        if name in CLIENT_ERROR_KIND:
            expected[("alertwire_client_errors_total", CLIENT_ERROR_KIND[name])] = 1
        assert changed == expected
