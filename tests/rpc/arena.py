"""The harness of the hostile-input suites (after Centrifugo's stress tests).

Each case runs in an `Arena`: a fresh in-process server with a bystander socket that connected,
authenticated and answered a ping before the case began. After the case has made its own
assertions the arena checks that the damage stayed contained:

* the server still answers /health;
* the bystander saw nothing extra (the first frame it gets after the case is the reply to a
  new ping) and still works;
* every socket the case opened is gone from the server, and the number of live asyncio tasks
  settles back to where it was (waited for with a deadline, not a sleep).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from aiohttp import ClientWebSocketResponse

from rpc.auth import AuthConfig
from rpc.limits import Limits
from rpc.transport_aiohttp import ServerState
from tests.conftest import make_state, make_token
from tests.rpc import demo
from tests.rpc.wire import Client, call, eventually, live_tasks, ping, recv, send_json, serve

ATTACKER = "attacker"
BIG = orjson.dumps({"blob": "x" * 256 * 1024})  # an event payload that fills buffers quickly
MAX_BIG_EVENTS = 400


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass
class Arena:
    client: Client
    state: ServerState
    feed: demo.Feed
    sockets: list[ClientWebSocketResponse] = field(default_factory=list)

    @property
    def metrics(self) -> Any:
        return self.state.metrics

    async def connect(self, token: str | None = None, **kwargs: Any) -> ClientWebSocketResponse:
        """A socket authenticated at the handshake (JSON-RPC dialect until it speaks tRPC)."""
        headers = bearer(token or make_token(sub=ATTACKER))
        ws: ClientWebSocketResponse = await self.client.ws_connect(
            "/api/trpc", headers=headers, **kwargs
        )
        self.sockets.append(ws)
        return ws

    async def anonymous(self, path: str = "/api/trpc", **kwargs: Any) -> ClientWebSocketResponse:
        ws: ClientWebSocketResponse = await self.client.ws_connect(path, **kwargs)
        self.sockets.append(ws)
        return ws

    async def trpc(self, **kwargs: Any) -> ClientWebSocketResponse:
        """As wsLink does it: the flag in the URL, then connectionParams with the token."""
        ws = await self.anonymous("/api/trpc?connectionParams=1", **kwargs)
        data = {"token": make_token(sub=ATTACKER)}
        await send_json(ws, {"method": "connectionParams", "data": data})
        return ws


Case = Callable[[Arena], Awaitable[None]]
Cases = list[Any]


def registry() -> tuple[Cases, Callable[..., Callable[[Case], Case]]]:
    """A list of cases and a decorator that adds to it: `@case(Limits(...))`."""
    cases: Cases = []

    def case(limits: Limits | None = None) -> Callable[[Case], Case]:
        def register(run: Case) -> Case:
            cases.append(pytest.param(limits or Limits(), run, id=run.__name__))
            return run

        return register

    return cases, case


@asynccontextmanager
async def arena(limits: Limits, auth: AuthConfig | None = None) -> AsyncIterator[Arena]:
    feed = demo.Feed()
    state = make_state(feed, limits)
    state.auth = auth or state.auth
    async with serve(state) as client:
        bystander = await client.ws_connect(
            "/api/trpc", headers=bearer(make_token(sub="bystander"))
        )
        await ping(bystander)
        (bystanders,) = state.sessions
        assert (await client.get("/health")).status == 200  # its keep-alive task is in the count
        baseline = live_tasks()
        ring = Arena(client, state, feed)
        yield ring
        for ws in ring.sockets:
            await ws.close()
        resp = await client.get("/health")
        assert resp.status == 200
        assert (await resp.json())["status"] == "ok"
        await ping(bystander, id="after")
        assert (await call(bystander, "system.whoami", id="who"))["result"]["sub"] == "bystander"
        await eventually(lambda: state.sessions == {bystanders}, "the case's sockets to be gone")
        await eventually(lambda: live_tasks() <= baseline, "the task count to settle")
        await bystander.close()


async def marker(ws: ClientWebSocketResponse) -> list[Any]:
    """Frames that arrive before the reply to a marker call. Calls are answered in order, so
    "no reply" is observed without waiting on a timer."""
    await send_json(ws, {"jsonrpc": "2.0", "method": "system.ping", "id": "marker"})
    frames: list[Any] = []
    while True:
        frame = await recv(ws)
        if isinstance(frame, dict) and frame.get("id") == "marker":
            return frames
        frames.append(frame)


async def overflow_send_queue(a: Arena) -> ClientWebSocketResponse:
    """Subscribe, stop reading, and publish large events until the server gives up on the
    socket (its send queue passed Limits.send_queue_frames); returns the socket."""
    ws = await a.connect()
    assert "result" in await call(ws, "demo.feed", {"hospitalId": "h1"})
    slow = a.metrics.slow_consumer_closes
    before = slow.get()
    for _ in range(MAX_BIG_EVENTS):
        if slow.get() > before:
            break
        a.feed.publish_raw("h1", BIG)
        await asyncio.sleep(0)  # one loop turn: the server writes what the socket takes
    assert slow.get() == before + 1, "the send queue never overflowed"
    return ws
