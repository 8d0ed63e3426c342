"""The examples of the JSON-RPC 2.0 specification (section 7), over HTTP and over WebSocket.

Each example's request text is sent as written; the procedures it names exist in the demo
router (subtract, sum, update, notify_hello, get_data), registered like any other.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient

from tests.conftest import make_token
from tests.rpc import demo

Client = TestClient[Any, Any]
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
PARSE_ERROR = -32700


async def exchange(client: Client, transport: str, text: str) -> Any:
    """Send one text; return the parsed reply, or None when the server sends none."""
    auth = {"Authorization": f"Bearer {make_token()}"}
    if transport == "http":
        headers = {"Content-Type": "application/json", **auth}
        resp = await client.post("/api/trpc", data=text, headers=headers)
        if resp.status == 204:
            assert await resp.read() == b""
            return None
        assert resp.status == 200
        return orjson.loads(await resp.read())
    ws = await client.ws_connect("/api/trpc", headers=auth)
    try:
        await ws.send_str(text)
        # A marker request: the reply to it comes after any reply to `text` (calls are
        # handled in order), so "no reply" is observed without waiting on a timer.
        await ws.send_str('{"jsonrpc":"2.0","method":"get_data","id":"marker"}')
        replies = []
        while True:
            frame = orjson.loads((await ws.receive()).data)
            if isinstance(frame, dict) and frame.get("id") == "marker":
                break
            replies.append(frame)
        assert len(replies) <= 1
        return replies[0] if replies else None
    finally:
        await ws.close()


TRANSPORTS = ["http", "ws"]


def error_code(reply: dict[str, Any]) -> int:
    assert reply["jsonrpc"] == "2.0"
    assert "result" not in reply
    assert isinstance(reply["error"]["message"], str)
    return int(reply["error"]["code"])


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_positional_parameters(client: Client, transport: str) -> None:
    text = '{"jsonrpc": "2.0", "method": "subtract", "params": [42, 23], "id": 1}'
    assert await exchange(client, transport, text) == {"jsonrpc": "2.0", "result": 19, "id": 1}
    text = '{"jsonrpc": "2.0", "method": "subtract", "params": [23, 42], "id": 2}'
    assert await exchange(client, transport, text) == {"jsonrpc": "2.0", "result": -19, "id": 2}


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_named_parameters(client: Client, transport: str) -> None:
    text = '{"jsonrpc": "2.0", "method": "subtract", "params": {"subtrahend": 23, "minuend": 42}, "id": 3}'
    assert await exchange(client, transport, text) == {"jsonrpc": "2.0", "result": 19, "id": 3}
    text = '{"jsonrpc": "2.0", "method": "subtract", "params": {"minuend": 42, "subtrahend": 23}, "id": 4}'
    assert await exchange(client, transport, text) == {"jsonrpc": "2.0", "result": 19, "id": 4}


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_notifications_get_no_reply_but_run(
    client: Client, transport: str, feed: demo.Feed
) -> None:
    text = '{"jsonrpc": "2.0", "method": "update", "params": [1,2,3,4,5]}'
    assert await exchange(client, transport, text) is None
    assert feed.updates == [1]
    assert await exchange(client, transport, '{"jsonrpc": "2.0", "method": "foobar"}') is None


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_non_existent_method(client: Client, transport: str) -> None:
    reply = await exchange(client, transport, '{"jsonrpc": "2.0", "method": "foobar", "id": "1"}')
    assert error_code(reply) == METHOD_NOT_FOUND
    assert reply["id"] == "1"
    assert reply["error"]["data"] == {"code": "NOT_FOUND", "httpStatus": 404}


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_invalid_json(client: Client, transport: str) -> None:
    text = '{"jsonrpc": "2.0", "method": "foobar, "params": "bar", "baz]'
    reply = await exchange(client, transport, text)
    assert error_code(reply) == PARSE_ERROR
    assert reply["id"] is None


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_invalid_request_object(client: Client, transport: str) -> None:
    reply = await exchange(client, transport, '{"jsonrpc": "2.0", "method": 1, "params": "bar"}')
    assert error_code(reply) == INVALID_REQUEST
    assert reply["id"] is None


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_batch_invalid_json(client: Client, transport: str) -> None:
    text = """[
      {"jsonrpc": "2.0", "method": "sum", "params": [1,2,4], "id": "1"},
      {"jsonrpc": "2.0", "method"
    ]"""
    reply = await exchange(client, transport, text)
    assert error_code(reply) == PARSE_ERROR
    assert reply["id"] is None


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_empty_array(client: Client, transport: str) -> None:
    reply = await exchange(client, transport, "[]")
    assert isinstance(reply, dict)
    assert error_code(reply) == INVALID_REQUEST
    assert reply["id"] is None


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_invalid_batch_of_one(client: Client, transport: str) -> None:
    reply = await exchange(client, transport, "[1]")
    assert isinstance(reply, list)
    assert len(reply) == 1
    assert error_code(reply[0]) == INVALID_REQUEST
    assert reply[0]["id"] is None


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_invalid_batch(client: Client, transport: str) -> None:
    reply = await exchange(client, transport, "[1,2,3]")
    assert [error_code(r) for r in reply] == [INVALID_REQUEST] * 3
    assert [r["id"] for r in reply] == [None] * 3


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_mixed_batch(client: Client, transport: str, feed: demo.Feed) -> None:
    text = """[
        {"jsonrpc": "2.0", "method": "sum", "params": [1,2,4], "id": "1"},
        {"jsonrpc": "2.0", "method": "notify_hello", "params": [7]},
        {"jsonrpc": "2.0", "method": "subtract", "params": [42,23], "id": "2"},
        {"foo": "boo"},
        {"jsonrpc": "2.0", "method": "foo.get", "params": {"name": "myself"}, "id": "5"},
        {"jsonrpc": "2.0", "method": "get_data", "id": "9"}
    ]"""
    reply = await exchange(client, transport, text)
    assert isinstance(reply, list)
    assert len(reply) == 5  # the notification is not answered
    by_id = {r["id"]: r for r in reply if r["id"] is not None}
    assert by_id["1"]["result"] == 7
    assert by_id["2"]["result"] == 19
    assert error_code(by_id["5"]) == METHOD_NOT_FOUND
    assert by_id["9"]["result"] == ["hello", 5]
    (invalid,) = [r for r in reply if r["id"] is None]
    assert error_code(invalid) == INVALID_REQUEST
    assert feed.updates == [7]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_batch_of_notifications(client: Client, transport: str, feed: demo.Feed) -> None:
    text = """[
        {"jsonrpc": "2.0", "method": "notify_hello", "params": [1,2,4]},
        {"jsonrpc": "2.0", "method": "notify_hello", "params": [7]}
    ]"""
    assert await exchange(client, transport, text) is None
    assert feed.updates == [7]  # the first had too many params: an error nobody hears


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_invalid_params_name_the_field(client: Client, transport: str) -> None:
    text = '{"jsonrpc":"2.0","method":"subtract","params":{"minuend":"x"},"id":7}'
    reply = await exchange(client, transport, text)
    assert error_code(reply) == -32602
    data = reply["error"]["data"]
    assert data["code"] == "BAD_REQUEST"
    assert data["httpStatus"] == 400
    assert set(data["fieldErrors"]) == {"minuend", "subtrahend"}


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_internal_errors_hide_details(client: Client, transport: str) -> None:
    reply = await exchange(client, transport, '{"jsonrpc":"2.0","method":"demo.boom","id":1}')
    assert error_code(reply) == -32603
    assert "secret" not in orjson.dumps(reply).decode()
    assert reply["error"]["data"]["code"] == "INTERNAL_SERVER_ERROR"


async def test_subscription_over_http_is_refused(client: Client, token: Any) -> None:
    text = '{"jsonrpc":"2.0","method":"demo.ticks","params":{"count":1},"id":1}'
    resp = await client.post("/api/trpc", data=text, headers={"Authorization": f"Bearer {token()}"})
    reply = orjson.loads(await resp.read())
    assert error_code(reply) == METHOD_NOT_FOUND
    assert "WebSocket" in reply["error"]["message"]


async def test_rpc_discover_describes_every_procedure(client: Client) -> None:
    reply = await exchange(client, "http", '{"jsonrpc":"2.0","method":"rpc.discover","id":1}')
    doc = reply["result"]
    assert doc["openrpc"].startswith("1.")
    names = {m["name"] for m in doc["methods"]}
    assert {"subtract", "demo.feed", "system.ping", "auth.authenticate", "rpc.discover"} <= names
    subtract = next(m for m in doc["methods"] if m["name"] == "subtract")
    assert [p["name"] for p in subtract["params"]] == ["minuend", "subtrahend"]
    assert subtract["result"]["schema"] == {"type": "integer"}
    feed = next(m for m in doc["methods"] if m["name"] == "demo.feed")
    assert feed["x-kind"] == "subscription"
    assert [p["name"] for p in feed["params"]] == ["hospitalId", "lastEventId"]
