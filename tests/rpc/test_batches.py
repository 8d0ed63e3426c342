"""Batches of plain calls run concurrently (JSON-RPC allows it; tRPC answers each element in a
frame of its own); batches with anything else keep their order."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp.test_utils import TestClient

from tests.conftest import make_token
from tests.rpc.wire import recv

Client = TestClient[Any, Any]


def meet(name: str, request_id: int) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "method": "demo.meet", "params": {"name": name}, "id": request_id}


async def test_a_jsonrpc_batch_of_calls_runs_them_concurrently(client: Client) -> None:
    ws = await client.ws_connect("/api/trpc")
    await ws.send_str(orjson.dumps([meet("a", 1), meet("b", 2)]).decode())
    # In order, the first call would wait for the second forever.
    replies = await recv(ws)
    assert replies == [
        {"jsonrpc": "2.0", "result": "met b", "id": 1},
        {"jsonrpc": "2.0", "result": "second", "id": 2},
    ]
    await ws.close()


async def test_over_http_too(client: Client) -> None:
    resp = await client.post("/api/trpc", data=orjson.dumps([meet("x", 1), meet("y", 2)]))
    assert [r["result"] for r in await resp.json()] == ["met y", "second"]


async def test_a_trpc_array_of_calls_runs_them_concurrently(client: Client) -> None:
    ws = await client.ws_connect("/api/trpc")
    calls = [
        {"id": n, "method": "mutation", "params": {"path": "demo.meet", "input": {"name": name}}}
        for n, name in ((1, "a"), (2, "b"))
    ]
    await ws.send_str(orjson.dumps(calls).decode())
    first, second = await recv(ws), await recv(ws)
    assert first == {"id": 2, "result": {"type": "data", "data": "second"}}
    assert second == {"id": 1, "result": {"type": "data", "data": "met b"}}
    await ws.close()


async def test_a_batch_that_authenticates_keeps_its_order(client: Client) -> None:
    """auth.authenticate first, then a call that needs it: in order, or the call would run
    unauthenticated."""
    ws = await client.ws_connect("/api/trpc")
    batch = [
        {
            "jsonrpc": "2.0",
            "method": "auth.authenticate",
            "params": {"token": make_token()},
            "id": 1,
        },
        {"jsonrpc": "2.0", "method": "system.whoami", "id": 2},
    ]
    await ws.send_str(orjson.dumps(batch).decode())
    auth, whoami = await recv(ws)
    assert auth["result"]["sub"] == "nurse-1"
    assert whoami["result"]["sub"] == "nurse-1"
    await ws.close()
