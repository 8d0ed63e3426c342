"""Small client-side helpers for talking to the in-process server in tests: frames, closes,
SSE events and metrics, each waited for with a deadline (never a bare sleep)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import quote

import orjson
from aiohttp import ClientResponse, ClientWebSocketResponse, WSMessage, WSMsgType
from aiohttp.test_utils import TestClient, TestServer

from rpc.transport_aiohttp import ServerState, create_app

Client = TestClient[Any, Any]
TIMEOUT_S = 5.0

UPGRADE = {
    "Connection": "Upgrade",
    "Upgrade": "websocket",
    "Sec-WebSocket-Version": "13",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
}


class Recorder:
    """A Session transport that keeps what is sent, for driving a Session without a socket."""

    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.closed: tuple[int, str] | None = None

    def send(self, frame: bytes) -> None:
        self.frames.append(frame)

    def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)


def enc(value: Any) -> str:
    """A value as a URL query parameter of JSON."""
    return quote(json.dumps(value, separators=(",", ":")))


@asynccontextmanager
async def serve(state: ServerState) -> AsyncIterator[Client]:
    """A TestClient on the app, with the access log off as server.main.start runs it."""
    server = TestServer(create_app(state))
    await server.start_server(access_log=None)
    async with TestClient(server) as client:
        yield client


async def recv(ws: ClientWebSocketResponse) -> Any:
    """The next frame, which must be a text frame of JSON."""
    msg = await ws.receive(timeout=TIMEOUT_S)
    assert msg.type is WSMsgType.TEXT, msg
    return orjson.loads(msg.data)


async def recv_close(ws: ClientWebSocketResponse) -> WSMessage:
    """The next frame, which must be the server's close frame."""
    msg = await ws.receive(timeout=TIMEOUT_S)
    assert msg.type is WSMsgType.CLOSE, msg
    return msg


async def send_json(ws: ClientWebSocketResponse, value: Any) -> None:
    await ws.send_str(orjson.dumps(value).decode())


async def call(ws: ClientWebSocketResponse, method: str, params: Any = None, id: Any = 1) -> Any:
    """A JSON-RPC call; returns the next frame (the reply, as calls are answered in order)."""
    request: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "id": id}
    if params is not None:
        request["params"] = params
    await send_json(ws, request)
    return await recv(ws)


async def ping(ws: ClientWebSocketResponse, id: Any = "ping") -> None:
    """system.ping answers first: nothing else was queued for this socket before it."""
    assert await call(ws, "system.ping", id=id) == {"jsonrpc": "2.0", "result": "pong", "id": id}


async def read_events(resp: ClientResponse, count: int) -> list[dict[str, str]]:
    """Parse SSE events (field -> value) until `count` events have arrived."""
    events: list[dict[str, str]] = []
    current: dict[str, str] = {}
    while len(events) < count:
        raw = await asyncio.wait_for(resp.content.readline(), TIMEOUT_S)
        assert raw, f"stream ended after {events}"
        line = raw.decode().rstrip("\n")
        if line == "":
            if current:
                events.append(current)
                current = {}
            continue
        field, _, value = line.partition(": ")
        current[field] = value
    return events


async def eventually(condition: Callable[[], bool], what: str) -> None:
    """Let the loop run until `condition()` holds; fail after TIMEOUT_S seconds."""
    deadline = time.monotonic() + TIMEOUT_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.005)


def live_tasks() -> int:
    return sum(1 for task in asyncio.all_tasks() if not task.done())
