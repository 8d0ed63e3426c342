"""Readiness, shutdown and the heartbeat sweeper, in process."""

from __future__ import annotations

import time
from typing import Any

import orjson
from aiohttp import WSMsgType
from aiohttp.test_utils import TestClient, TestServer

from rpc.transport_aiohttp import create_app, shutdown
from rpc.transport_aiohttp.app import sweep
from tests.conftest import make_state
from tests.rpc import demo

UPGRADE = {
    "Upgrade": "websocket",
    "Connection": "Upgrade",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    "Sec-WebSocket-Version": "13",
}


async def test_health_and_refusal_while_starting_and_shutting_down() -> None:
    state = make_state(demo.Feed())
    state.ready = False
    async with TestClient(TestServer(create_app(state))) as client:
        resp = await client.get("/health")
        assert resp.status == 503
        assert (await resp.json())["status"] == "starting"
        state.ready = True
        resp = await client.get("/health")
        assert resp.status == 200
        ws = await client.ws_connect("/api/trpc")
        await ws.send_str('{"id":1,"method":"query","params":{"path":"system.ping"}}')
        await ws.receive(timeout=5)
        await shutdown(state, grace_s=0.5)
        assert orjson.loads((await ws.receive(timeout=5)).data) == {
            "id": None,
            "method": "reconnect",
        }
        closing = await ws.receive(timeout=5)
        assert closing.type is WSMsgType.CLOSE
        assert closing.data == 1012
        resp = await client.get("/health")
        assert resp.status == 503
        assert (await resp.json())["status"] == "shutting_down"
        resp = await client.get("/api/trpc", headers=UPGRADE)
        assert resp.status == 503


async def test_sweeper_pings_quiet_sockets_and_drops_dead_ones() -> None:
    state = make_state(demo.Feed())
    async with TestClient(TestServer(create_app(state))) as client:
        ws = await client.ws_connect("/api/trpc", autoping=False)
        await ws.send_str('{"jsonrpc":"2.0","method":"system.ping","id":1}')
        await ws.receive(timeout=5)
        (session,) = state.sessions
        conn: Any = session.transport
        now = time.monotonic()
        sweep(state, now + state.limits.heartbeat_interval_s + 1)
        msg = await ws.receive(timeout=5)
        assert msg.type is WSMsgType.PING
        # no answer: after the timeout the socket is dropped
        sweep(state, conn.last_seen + state.limits.heartbeat_timeout_s + 1)
        msg = await ws.receive(timeout=5)
        assert msg.type in (WSMsgType.CLOSED, WSMsgType.CLOSE, WSMsgType.ERROR)
