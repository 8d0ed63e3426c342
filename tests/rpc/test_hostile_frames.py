"""Hostile frames: malformed, mistyped or absurd input on one socket. Each case asserts its
documented reaction; the arena (tests/rpc/arena.py) then checks that the server, a bystander
socket and the task count are unharmed. Floods and resource limits: test_hostile_floods.py."""

from __future__ import annotations

import pytest
from aiohttp import WSMsgType

from rpc.limits import Limits
from tests.rpc.arena import Arena, Case, arena, marker, registry
from tests.rpc.wire import call, ping, recv, recv_close, send_json

CASES, case = registry()
PARSE_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND, INVALID_PARAMS = -32700, -32600, -32601, -32602


def connection_error(frame: dict[str, object], number: int) -> str:
    """A JSON-RPC error that belongs to no request; returns its message."""
    assert frame["id"] is None
    error = frame["error"]
    assert isinstance(error, dict)
    assert error["code"] == number
    return str(error["message"])


@case()
async def garbage_text(a: Arena) -> None:
    ws = await a.connect()
    for text in ("hello there", "{", '{"jsonrpc":"2.0",', "\x00\x01", "NaN", "[1,]"):
        await ws.send_str(text)
        assert connection_error(await recv(ws), PARSE_ERROR) == "Invalid JSON"
    await ping(ws)
    assert a.metrics.bad_frames.get("parse") == 6


@case()
async def empty_frame(a: Arena) -> None:
    ws = await a.connect()
    await ws.send_str("")
    assert connection_error(await recv(ws), PARSE_ERROR) == "Invalid JSON"
    await ping(ws)


@case()
async def json_scalars_and_null(a: Arena) -> None:
    ws = await a.connect()
    for text in ("null", "42", "true", '"just a string"', "1.5", "{}"):
        await ws.send_str(text)
        assert connection_error(await recv(ws), INVALID_REQUEST) == "Invalid request"
    await ping(ws)


@case()
async def empty_array_batch(a: Arena) -> None:
    ws = await a.connect()
    await ws.send_str("[]")
    reply = await recv(ws)
    assert isinstance(reply, dict)  # one error object, not an array
    connection_error(reply, INVALID_REQUEST)
    await ping(ws)


@case()
async def binary_frame(a: Arena) -> None:
    ws = await a.connect()
    await ws.send_bytes(b'{"jsonrpc":"2.0","method":"system.ping","id":1}')
    message = connection_error(await recv(ws), INVALID_REQUEST)
    assert message == "Binary frames are not supported; send text"
    await ping(ws)
    assert a.metrics.bad_frames.get("binary") == 1


@case()
async def invalid_utf8_text_frame(a: Arena) -> None:
    """RFC 6455 8.1: a text frame that is not UTF-8 fails the connection with 1007."""
    ws = await a.connect()
    await ws.send_frame(b'{"id":"\xff\xfe\xfd"}', WSMsgType.TEXT)
    closing = await recv_close(ws)
    assert closing.data == 1007
    assert a.metrics.bad_frames.get("invalid_utf8") == 1


@case()
async def lone_surrogate_escape(a: Arena) -> None:
    ws = await a.connect()
    await ws.send_str('{"jsonrpc":"2.0","method":"\\ud800","id":1}')
    connection_error(await recv(ws), PARSE_ERROR)
    await ping(ws)


@case(Limits(max_json_depth=32))
async def deeply_nested_json(a: Arena) -> None:
    ws = await a.connect()
    nested_params = '{"jsonrpc":"2.0","method":"system.ping","id":1,"params":' + (
        '{"a":' * 40 + "1" + "}" * 40 + "}"
    )
    for text in ("[" * 100 + "]" * 100, nested_params):
        await ws.send_str(text)
        message = connection_error(await recv(ws), INVALID_REQUEST)
        assert message == "JSON nested too deeply (at most 32 levels)"
    # deeper than the parser itself goes: a parse error, no recursion anywhere
    await ws.send_str("[" * 100_000)
    connection_error(await recv(ws), PARSE_ERROR)
    await ping(ws)
    assert a.metrics.bad_frames.get("too_deep") == 2


@case()
async def very_long_string_id(a: Arena) -> None:
    ws = await a.connect()
    long_id = "x" * 100_000
    reply = await call(ws, "system.ping", id=long_id)
    assert (
        connection_error(reply, INVALID_REQUEST) == "Request id too long (at most 256 characters)"
    )
    assert await call(ws, "system.ping", id="y" * 256) == {
        "jsonrpc": "2.0",
        "result": "pong",
        "id": "y" * 256,
    }
    trpc = await a.trpc()
    await send_json(trpc, {"id": long_id, "method": "query", "params": {"path": "system.ping"}})
    reply = await recv(trpc)
    assert reply["id"] is None
    assert reply["error"]["message"] == "Request id too long (at most 256 characters)"
    await ping(trpc)
    assert a.metrics.bad_frames.get("bad_id") == 2


@case()
async def huge_numeric_ids(a: Arena) -> None:
    ws = await a.connect()
    # Beyond 64 bits the id is read as a double, and echoed as one (as JavaScript reads it).
    await ws.send_str(
        '{"jsonrpc":"2.0","method":"system.ping","id":123456789012345678901234567890}'
    )
    reply = await recv(ws)
    assert reply["result"] == "pong"
    assert reply["id"] == 1.2345678901234568e29
    await ws.send_str('{"jsonrpc":"2.0","method":"system.ping","id":18446744073709551615}')
    assert (await recv(ws))["id"] == 18446744073709551615
    await ws.send_str('{"jsonrpc":"2.0","method":"system.ping","id":1e400}')  # no double holds it
    connection_error(await recv(ws), PARSE_ERROR)
    trpc = await a.trpc()  # tRPC ids are integers or strings
    await trpc.send_str('{"id":1.5,"method":"query","params":{"path":"system.ping"}}')
    reply = await recv(trpc)
    assert reply["id"] is None
    assert reply["error"]["message"] == "`id` must be an integer or a string"
    await ping(ws)


@case()
async def unknown_methods(a: Arena) -> None:
    ws = await a.connect()
    reply = await call(ws, "no.such.method")
    assert reply["error"]["code"] == METHOD_NOT_FOUND
    assert reply["error"]["data"] == {"code": "NOT_FOUND", "httpStatus": 404}
    reply = await call(ws, "m" * 50_000, id=2)
    assert reply["error"]["code"] == METHOD_NOT_FOUND
    assert len(reply["error"]["message"]) < 300  # the name is not echoed in full
    for method in ("rpc.", "rpc.discover.x", "connectionParams.", "__init__"):
        assert (await call(ws, method, id=3))["error"]["code"] == METHOD_NOT_FOUND
    # tRPC's method names belong to the tRPC dialect (CONTRACT 3b), which wants params.path
    reply = await call(ws, "subscription", id=4)
    assert (reply["id"], reply["error"]["code"]) == (4, INVALID_REQUEST)
    trpc = await a.trpc()
    await send_json(trpc, {"id": 1, "method": "query", "params": {"path": "nope"}})
    assert (await recv(trpc))["error"]["data"]["code"] == "NOT_FOUND"
    await send_json(trpc, {"id": 2, "method": "subscription", "params": {"path": "system.ping"}})
    reply = await recv(trpc)
    assert reply["error"]["message"] == 'No "subscription"-procedure on path "system.ping"'
    await send_json(trpc, {"id": 3, "method": "query", "params": {"path": ["system", "ping"]}})
    assert (await recv(trpc))["error"]["message"] == "params.path must be a string"
    await ping(ws)


@case()
async def wrong_versions_and_shapes(a: Arena) -> None:
    ws = await a.connect()
    for request in (
        {"jsonrpc": "1.0", "method": "system.ping", "id": 1},
        {"method": "system.ping", "id": 1},
        {"jsonrpc": "2.0", "method": 42, "id": 1},
        {"jsonrpc": "2.0", "method": "system.ping", "id": {"nested": 1}},
        {"jsonrpc": "2.0", "method": "system.ping", "id": True},
    ):
        await send_json(ws, request)
        assert (await recv(ws))["error"]["code"] == INVALID_REQUEST
    await ping(ws)


@case()
async def params_of_the_wrong_type(a: Arena) -> None:
    ws = await a.connect()
    assert (await call(ws, "subtract", "a string"))["error"]["code"] == INVALID_REQUEST
    reply = await call(ws, "subtract", {"minuend": "x", "subtrahend": [1]}, id=2)
    assert reply["error"]["code"] == INVALID_PARAMS
    assert set(reply["error"]["data"]["fieldErrors"]) == {"minuend", "subtrahend"}
    assert (await call(ws, "subtract", [1, 2, 3], id=3))["error"]["code"] == INVALID_PARAMS
    assert (await call(ws, "system.ping", {"surprise": 1}, id=4))["error"]["code"] == INVALID_PARAMS
    reply = await call(ws, "auth.authenticate", {"token": 12345}, id=5)
    assert reply["error"]["code"] == INVALID_PARAMS
    reply = await call(ws, "subscription.stop", {"subscription": 7}, id=6)
    assert reply["error"]["code"] == INVALID_PARAMS
    trpc = await a.trpc()
    query = {"path": "demo.echo", "input": {"text": {"$gt": ""}}}
    await send_json(trpc, {"id": 1, "method": "query", "params": query})
    reply = await recv(trpc)
    assert reply["error"]["data"]["code"] == "BAD_REQUEST"
    assert "text" in reply["error"]["data"]["fieldErrors"]
    await ping(ws)


@case()
async def trpc_frame_with_id_null(a: Arena) -> None:
    ws = await a.trpc()
    for frame in (
        {"id": None, "method": "query", "params": {"path": "system.ping"}},
        {"method": "mutation", "params": {"path": "subtract"}},
        {"id": None, "method": "subscription", "params": {"path": "demo.feed"}},
    ):
        await send_json(ws, frame)
        reply = await recv(ws)
        assert reply == {
            "id": None,
            "error": {
                "code": PARSE_ERROR,
                "message": "`id` is required",
                "data": {"code": "PARSE_ERROR", "httpStatus": 400},
            },
        }
    assert not a.feed.streams  # nothing was opened
    await ping(ws)


@pytest.mark.parametrize(
    "data",
    [{"token": 1}, {"token": None}, {"token": ["a"]}, {"nested": {"a": "b"}}, "token", [1], 7],
)
async def test_connection_params_that_are_not_an_object_of_strings(data: object) -> None:
    """Refused as the official server does: PARSE_ERROR with id null, then the socket closes
    (1008: the params were malformed, not a bad token)."""
    async with arena(Limits()) as a:
        ws = await a.anonymous("/api/trpc?connectionParams=1")
        await send_json(ws, {"method": "connectionParams", "data": data})
        reply = await recv(ws)
        assert reply["id"] is None
        assert reply["error"]["code"] == PARSE_ERROR
        assert reply["error"]["message"] == "Invalid connection params shape"
        assert (await recv_close(ws)).data == 1008


@case()
async def connection_params_with_an_empty_token(a: Arena) -> None:
    ws = await a.anonymous("/api/trpc?connectionParams=1")
    await send_json(ws, {"method": "connectionParams", "data": {"token": ""}})
    reply = await recv(ws)
    assert (reply["id"], reply["error"]["message"]) == (None, "Missing token")
    assert (await recv_close(ws)).data == 4001


@case()
async def stop_before_start_and_unknown_stops(a: Arena) -> None:
    trpc = await a.trpc()
    await send_json(trpc, {"id": 99, "method": "subscription.stop"})  # never started: ignored
    await send_json(trpc, {"id": "nope", "method": "subscription.stop"})
    assert await marker(trpc) == []
    ws = await a.connect()
    reply = await call(ws, "subscription.stop", {"subscription": "s999"})
    assert reply == {"jsonrpc": "2.0", "result": False, "id": 1}
    # a JSON-RPC stop cannot reach a tRPC subscription: ids live in separate spaces
    await send_json(
        trpc,
        {
            "id": 1,
            "method": "subscription",
            "params": {"path": "demo.feed", "input": {"hospitalId": "h1"}},
        },
    )
    assert (await recv(trpc))["result"]["type"] == "started"
    reply = await call(trpc, "subscription.stop", {"subscription": "1"}, id=2)
    assert reply["result"] is False
    await send_json(trpc, {"id": 1, "method": "subscription.stop"})
    assert await recv(trpc) == {"id": 1, "result": {"type": "stopped"}}
    assert not a.feed.streams


@case()
async def duplicate_trpc_subscription_ids(a: Arena) -> None:
    ws = await a.trpc()
    subscribe = {
        "id": 5,
        "method": "subscription",
        "params": {"path": "demo.feed", "input": {"hospitalId": "h1"}},
    }
    await send_json(ws, subscribe)
    assert await recv(ws) == {"id": 5, "result": {"type": "started"}}
    for _ in range(3):
        await send_json(ws, subscribe)
        reply = await recv(ws)
        assert reply["error"]["message"] == "Duplicate id 5"
        assert reply["error"]["data"]["code"] == "BAD_REQUEST"
    assert len(a.feed.streams) == 1  # the duplicates opened nothing
    event_id = a.feed.publish("h1")
    assert (await recv(ws))["result"]["id"] == event_id  # the original still delivers, once
    assert await marker(ws) == []
    await send_json(ws, {"id": 5, "method": "subscription.stop"})
    assert await recv(ws) == {"id": 5, "result": {"type": "stopped"}}


@case()
async def control_frames(a: Arena) -> None:
    ws = await a.connect(autoping=False)
    await ws.pong(b"unsolicited")
    await ws.ping(b"are you there")
    msg = await ws.receive(timeout=5)
    assert (msg.type, msg.data) == (WSMsgType.PONG, b"are you there")
    await ws.send_str("PONG")  # the tRPC keep-alive answer, unasked: ignored
    assert await marker(ws) == []


@pytest.mark.parametrize(("limits", "run"), CASES)
async def test_hostile_frame(limits: Limits, run: Case) -> None:
    async with arena(limits) as a:
        await run(a)
