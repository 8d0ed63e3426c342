"""Calls pipelined on one WebSocket run concurrently (up to Limits.max_calls_in_flight), their
replies keep the order of the requests, and any other frame waits for the calls before it."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from rpc.dispatch import Dispatcher
from rpc.limits import Limits
from rpc.session import Session
from rpc.transport_aiohttp import create_app
from tests.conftest import AUTH, demo_router, make_state, make_token
from tests.rpc import demo
from tests.rpc.wire import TIMEOUT_S, Recorder, eventually, recv, send_json

Client = TestClient[Any, Any]


@pytest.fixture(autouse=True)
def holds() -> demo.Hold:
    demo.holds = demo.Hold()
    return demo.holds


def hold(name: str, request_id: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "method": "demo.hold", "params": {"name": name}, "id": request_id}


def trpc_hold(name: str, request_id: Any) -> dict[str, Any]:
    return {
        "id": request_id,
        "method": "mutation",
        "params": {"path": "demo.hold", "input": {"name": name}},
    }


async def started(holds: demo.Hold) -> tuple[str, asyncio.Future[str]]:
    return await asyncio.wait_for(holds.started.get(), TIMEOUT_S)


async def test_calls_sent_one_after_another_run_at_the_same_time(
    client: Client, holds: demo.Hold
) -> None:
    ws = await client.ws_connect("/api/trpc")
    await send_json(ws, hold("first", 1))
    await send_json(ws, hold("second", 2))
    # Handled in order, the second call would not start before the first is answered.
    names = {(await started(holds))[0], (await started(holds))[0]}
    assert names == {"first", "second"}
    await ws.close()


async def test_replies_keep_the_order_of_the_requests(client: Client, holds: demo.Hold) -> None:
    ws = await client.ws_connect("/api/trpc")
    for n, name in enumerate(("a", "b", "c"), start=1):
        await send_json(ws, hold(name, n))
    releases = dict([await started(holds) for _ in range(3)])
    releases["c"].set_result("C")  # the last request finishes first...
    releases["b"].set_result("B")
    releases["a"].set_result("A")
    replies = [await recv(ws) for _ in range(3)]  # ...and is still answered last
    assert replies == [
        {"jsonrpc": "2.0", "result": "A", "id": 1},
        {"jsonrpc": "2.0", "result": "B", "id": 2},
        {"jsonrpc": "2.0", "result": "C", "id": 3},
    ]
    await ws.close()


async def test_trpc_calls_are_pipelined_the_same_way(client: Client, holds: demo.Hold) -> None:
    ws = await client.ws_connect("/api/trpc")
    await send_json(ws, trpc_hold("x", 1))
    await send_json(ws, trpc_hold("y", 2))
    releases = dict([await started(holds), await started(holds)])
    releases["y"].set_result("Y")
    releases["x"].set_result("X")
    assert await recv(ws) == {"id": 1, "result": {"type": "data", "data": "X"}}
    assert await recv(ws) == {"id": 2, "result": {"type": "data", "data": "Y"}}
    await ws.close()


async def test_a_failing_call_is_answered_in_its_place_and_harms_none_of_the_others(
    client: Client, holds: demo.Hold
) -> None:
    ws = await client.ws_connect("/api/trpc")
    await send_json(ws, hold("slow", 1))
    await send_json(ws, {"jsonrpc": "2.0", "method": "demo.boom", "id": 2})
    await send_json(ws, {"jsonrpc": "2.0", "method": "demo.hold", "params": {}, "id": 3})
    await send_json(ws, {"jsonrpc": "2.0", "method": "system.ping", "id": 4})
    _, release = await started(holds)
    release.set_result("done")
    replies = [await recv(ws) for _ in range(4)]
    assert [r["id"] for r in replies] == [1, 2, 3, 4]
    assert replies[0]["result"] == "done"
    assert replies[1]["error"]["code"] == -32603  # internal error, no detail
    assert replies[2]["error"]["code"] == -32602  # invalid params
    assert replies[3]["result"] == "pong"
    await ws.close()


async def test_a_subscription_waits_for_the_calls_sent_before_it(
    client: Client, holds: demo.Hold
) -> None:
    ws = await client.ws_connect("/api/trpc", headers={"Authorization": f"Bearer {make_token()}"})
    await send_json(ws, hold("before", 1))
    await send_json(
        ws,
        {"jsonrpc": "2.0", "method": "demo.ticks", "params": {"count": 2}, "id": 2},
    )
    _, release = await started(holds)
    release.set_result("answered")
    # Were the subscription not held back, its frames would come before this reply.
    assert await recv(ws) == {"jsonrpc": "2.0", "result": "answered", "id": 1}
    assert "subscription" in (await recv(ws))["result"]
    await ws.close()


async def test_authentication_waits_for_the_calls_sent_before_it(
    client: Client, holds: demo.Hold
) -> None:
    """A call sent before auth.authenticate runs as the caller was then (anonymous), however
    long it takes; the call after it runs authenticated."""
    ws = await client.ws_connect("/api/trpc")
    await send_json(ws, {"jsonrpc": "2.0", "method": "system.whoami", "id": 0})
    assert (await recv(ws))["error"]["code"] == -32001  # unauthorized
    await send_json(ws, hold("anonymous", 1))
    await send_json(
        ws,
        {
            "jsonrpc": "2.0",
            "method": "auth.authenticate",
            "params": {"token": make_token()},
            "id": 2,
        },
    )
    await send_json(ws, {"jsonrpc": "2.0", "method": "system.whoami", "id": 3})
    _, release = await started(holds)
    release.set_result("ok")
    replies = [await recv(ws) for _ in range(3)]
    assert [r["id"] for r in replies] == [1, 2, 3]
    assert replies[2]["result"]["sub"] == "nurse-1"
    await ws.close()


async def test_at_most_max_calls_in_flight_run_at_once(holds: demo.Hold) -> None:
    """Beyond the cap the session takes no more frames (so the transport stops reading the
    socket) until a running call ends."""
    out = Recorder()
    session = Session(
        Dispatcher(demo_router(), None),
        out,
        auth=AUTH,
        limits=Limits(rate_per_10s=0, max_calls_in_flight=2),
    )
    await session.receive(orjson.dumps(hold("one", 1)).decode())
    await session.receive(orjson.dumps(hold("two", 2)).decode())
    third = asyncio.create_task(session.receive(orjson.dumps(hold("three", 3)).decode()))
    first = await started(holds)
    await started(holds)
    # Both running calls wait for us, so nothing can let the third frame in yet.
    assert not third.done()
    assert holds.started.empty()
    first[1].set_result("1")
    await asyncio.wait_for(third, TIMEOUT_S)
    name, release = await started(holds)
    assert name == "three"
    release.set_result("3")
    session.shutdown()
    await session.settle(TIMEOUT_S)


async def test_a_call_still_running_when_the_client_leaves_is_carried_out(
    feed: demo.Feed, holds: demo.Hold
) -> None:
    state = make_state(feed, Limits())
    async with TestClient(TestServer(create_app(state))) as client:
        ws = await client.ws_connect("/api/trpc")
        await send_json(ws, hold("orphan", 1))
        _, release = await started(holds)
        await ws.close()
        assert not release.done()
        release.set_result("nobody listens")
        await eventually(lambda: holds.finished == ["orphan"], "the orphaned call to finish")
        other = await client.ws_connect("/api/trpc")
        await send_json(other, {"jsonrpc": "2.0", "method": "system.ping", "id": 1})
        assert (await recv(other))["result"] == "pong"
        await other.close()


async def test_calls_that_outlive_the_grace_are_cancelled(holds: demo.Hold) -> None:
    out = Recorder()
    session = Session(Dispatcher(demo_router(), None), out, auth=AUTH, limits=Limits())
    await session.receive(orjson.dumps(hold("stuck", 1)).decode())
    _, release = await started(holds)
    session.shutdown()
    await session.settle(0.01)
    assert release.cancelled()
    assert holds.finished == []
    await session.calls_done()
