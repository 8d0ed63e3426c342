"""tRPC v11 WebSocket frames (TRPC_PROTOCOL.md section 1) against the real aiohttp app."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import ClientWebSocketResponse, WSMsgType
from aiohttp.test_utils import TestClient

from tests.conftest import TokenFactory
from tests.rpc import demo

Client = TestClient[Any, Any]


async def recv(ws: ClientWebSocketResponse) -> Any:
    msg = await ws.receive(timeout=5)
    assert msg.type is WSMsgType.TEXT, msg
    return orjson.loads(msg.data)


async def connect(client: Client, token: str | None) -> ClientWebSocketResponse:
    """As wsLink with connectionParams: flag in the URL, params as the first frame."""
    ws = await client.ws_connect("/api/trpc?connectionParams=1")
    await ws.send_str(
        orjson.dumps({"method": "connectionParams", "data": {"token": token}}).decode()
    )
    return ws


async def test_query_mutation_and_errors(client: Client, token: TokenFactory) -> None:
    ws = await connect(client, token(role="admin"))
    await ws.send_str(
        '{"id":1,"method":"query","params":{"input":{"text":"hi"},"path":"demo.echo"}}'
    )
    assert await recv(ws) == {"id": 1, "result": {"type": "data", "data": "hi"}}
    await ws.send_str(
        '{"id":2,"method":"mutation","params":{"input":{"text":"x"},"path":"demo.conflict"}}'
    )
    reply = await recv(ws)
    assert reply["id"] == 2
    assert reply["error"]["code"] == -32009
    assert reply["error"]["data"] == {
        "code": "CONFLICT",
        "httpStatus": 409,
        "status": "resolved",
        "path": "demo.conflict",
    }
    await ws.send_str('{"id":4,"method":"query","params":{"path":"nope"}}')
    reply = await recv(ws)
    assert reply["error"]["code"] == -32004
    assert reply["error"]["data"]["code"] == "NOT_FOUND"
    await ws.send_str(
        '{"id":5,"method":"query","params":{"path":"demo.ticks","input":{"count":1}}}'
    )
    reply = await recv(ws)
    assert reply["error"]["message"] == 'No "query"-procedure on path "demo.ticks"'
    await ws.send_str('{"id":6,"method":"query","params":{"input":{"text":42},"path":"demo.echo"}}')
    reply = await recv(ws)
    assert reply["error"]["code"] == -32600
    assert reply["error"]["data"]["code"] == "BAD_REQUEST"
    assert "text" in reply["error"]["data"]["fieldErrors"]
    await ws.close()


async def test_jsonrpc_field_is_echoed(client: Client, token: TokenFactory) -> None:
    ws = await connect(client, token())
    await ws.send_str('{"jsonrpc":"2.0","id":"a","method":"query","params":{"path":"system.ping"}}')
    assert await recv(ws) == {
        "jsonrpc": "2.0",
        "id": "a",
        "result": {"type": "data", "data": "pong"},
    }
    await ws.close()


async def test_array_batch_is_answered_one_frame_per_element(
    client: Client, token: TokenFactory
) -> None:
    ws = await connect(client, token())
    await ws.send_str(
        '[{"id":1,"method":"query","params":{"path":"system.ping"}},'
        '{"id":2,"method":"query","params":{"input":{"text":"b"},"path":"demo.echo"}}]'
    )
    assert await recv(ws) == {"id": 1, "result": {"type": "data", "data": "pong"}}
    assert await recv(ws) == {"id": 2, "result": {"type": "data", "data": "b"}}
    await ws.close()


async def test_ping_pong_and_parse_errors(client: Client, token: TokenFactory) -> None:
    ws = await connect(client, token())
    await ws.send_str("PING")
    msg = await ws.receive(timeout=5)
    assert msg.data == "PONG"
    await ws.send_str("{nope")
    reply = await recv(ws)
    assert reply["id"] is None
    assert reply["error"]["code"] == -32700
    await ws.send_str('{"id":null,"method":"query","params":{"path":"system.ping"}}')
    reply = await recv(ws)
    assert reply["id"] is None
    assert reply["error"]["data"]["code"] == "PARSE_ERROR"
    await ws.close()


async def test_tracked_subscription_lifecycle(
    client: Client, token: TokenFactory, feed: demo.Feed
) -> None:
    ws = await connect(client, token())
    await ws.send_str(
        '{"id":5,"method":"subscription","params":{"input":{"hospitalId":"h1"},"path":"demo.feed"}}'
    )
    assert await recv(ws) == {"id": 5, "result": {"type": "started"}}
    event_id = feed.publish("h1")
    feed.publish("h2")  # another hospital: not for this subscriber
    frame = await recv(ws)
    assert frame == {
        "id": 5,
        "result": {
            "type": "data",
            "id": event_id,
            "data": {"id": event_id, "data": {"hospitalId": "h1", "seq": 1}},
        },
    }
    # a duplicate id while active is refused; the original keeps running
    await ws.send_str(
        '{"id":5,"method":"subscription","params":{"input":{"hospitalId":"h1"},"path":"demo.feed"}}'
    )
    reply = await recv(ws)
    assert reply["error"]["message"] == "Duplicate id 5"
    assert reply["error"]["data"]["code"] == "BAD_REQUEST"
    await ws.send_str('{"id":5,"method":"subscription.stop"}')
    assert await recv(ws) == {"id": 5, "result": {"type": "stopped"}}
    # stopping again (the client does so after stopped) is ignored: the next reply is the ping's
    await ws.send_str('{"id":5,"method":"subscription.stop"}')
    await ws.send_str('{"id":6,"method":"query","params":{"path":"system.ping"}}')
    assert (await recv(ws))["id"] == 6
    assert not feed.streams  # released
    await ws.close()


async def test_untracked_generator_subscription_completes_or_fails(
    client: Client, token: TokenFactory
) -> None:
    ws = await connect(client, token())
    await ws.send_str(
        '{"id":1,"method":"subscription","params":{"input":{"count":2},"path":"demo.ticks"}}'
    )
    assert await recv(ws) == {"id": 1, "result": {"type": "started"}}
    assert await recv(ws) == {"id": 1, "result": {"type": "data", "data": {"n": 0}}}
    assert await recv(ws) == {"id": 1, "result": {"type": "data", "data": {"n": 1}}}
    assert await recv(ws) == {"id": 1, "result": {"type": "stopped"}}
    await ws.send_str(
        '{"id":2,"method":"subscription","params":{"input":{"count":3,"failAt":1},"path":"demo.ticks"}}'
    )
    assert (await recv(ws))["result"]["type"] == "started"
    assert (await recv(ws))["result"]["data"] == {"n": 0}
    error = await recv(ws)
    assert error["id"] == 2
    assert error["error"]["data"]["code"] == "TOO_MANY_REQUESTS"
    assert await recv(ws) == {"id": 2, "result": {"type": "stopped"}}
    await ws.close()


async def test_resume_with_last_event_id_after_a_dropped_socket(
    client: Client, token: TokenFactory, feed: demo.Feed
) -> None:
    sub = '{"id":5,"method":"subscription","params":{"input":{"hospitalId":"h1"},"path":"demo.feed"%s}}'
    ws = await connect(client, token())
    await ws.send_str(sub % "")
    await recv(ws)
    feed.publish("h1")
    first = await recv(ws)
    last_seen = first["result"]["id"]
    await ws.close()  # dropped; events go on meanwhile
    missed = [feed.publish("h1") for _ in range(3)]
    ws = await connect(client, token())
    await ws.send_str(sub % f',"lastEventId":"{last_seen}"')
    assert (await recv(ws))["result"]["type"] == "started"
    got = [(await recv(ws))["result"]["id"] for _ in missed]
    assert got == missed
    live = feed.publish("h1")
    assert (await recv(ws))["result"]["id"] == live
    await ws.close()


async def test_connection_params_authenticate_and_bad_shape_is_rejected(
    client: Client, token: TokenFactory
) -> None:
    ws = await connect(client, token(sub="whoever"))
    await ws.send_str('{"id":1,"method":"query","params":{"path":"system.whoami"}}')
    assert (await recv(ws))["result"]["data"]["sub"] == "whoever"
    await ws.close()
    ws = await client.ws_connect("/api/trpc?connectionParams=1")
    await ws.send_str('{"method":"connectionParams","data":{"token":1}}')
    reply = await recv(ws)
    assert reply["id"] is None
    assert reply["error"]["code"] == -32700
    assert reply["error"]["message"] == "Invalid connection params shape"
    msg = await ws.receive(timeout=5)
    assert msg.type is WSMsgType.CLOSE


async def test_calls_before_authentication_are_unauthorized(client: Client) -> None:
    ws = await client.ws_connect("/api/trpc")
    await ws.send_str('{"id":1,"method":"query","params":{"path":"system.whoami"}}')
    reply = await recv(ws)
    assert reply["error"]["code"] == -32001
    await ws.send_str('{"id":2,"method":"query","params":{"path":"system.ping"}}')
    assert (await recv(ws))["result"]["data"] == "pong"  # public
    await ws.close()


async def test_trpc_element_in_a_jsonrpc_batch_is_invalid(
    client: Client, token: TokenFactory
) -> None:
    ws = await connect(client, token())
    await ws.send_str(
        '[{"jsonrpc":"2.0","method":"system.ping","id":1},'
        '{"id":2,"method":"query","params":{"path":"system.ping"}}]'
    )
    reply = await recv(ws)
    assert reply[0] == {"jsonrpc": "2.0", "result": "pong", "id": 1}
    assert reply[1]["error"]["code"] == -32600
    await ws.close()
