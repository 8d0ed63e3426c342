"""tRPC HTTP (httpLink, httpBatchLink) and SSE (httpSubscriptionLink) as TRPC_PROTOCOL.md
sections 2 and 3 describe them."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp.test_utils import TestClient

from tests.conftest import TokenFactory
from tests.rpc import demo
from tests.rpc.wire import enc, read_events

Client = TestClient[Any, Any]


async def test_query_get_and_mutation_post(client: Client, token: TokenFactory) -> None:
    auth = {"Authorization": f"Bearer {token(role='admin')}"}
    resp = await client.get(f"/api/trpc/demo.echo?input={enc({'text': 'hi'})}")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("application/json")
    assert await resp.json() == {"result": {"data": "hi"}}
    resp = await client.post(
        "/api/trpc/subtract",
        data='{"minuend":5,"subtrahend":2}',
        headers={"Content-Type": "application/json", **auth},
    )
    assert await resp.json() == {"result": {"data": 3}}
    resp = await client.post(
        "/api/trpc/demo.conflict",
        data='{"text":"x"}',
        headers={"Content-Type": "application/json", **auth},
    )
    assert resp.status == 409
    body = await resp.json()
    assert body["error"]["code"] == -32009
    assert body["error"]["data"]["path"] == "demo.conflict"


async def test_batches_and_status_rules(client: Client, token: TokenFactory) -> None:
    auth = {"Authorization": f"Bearer {token()}"}
    inputs = enc({"0": {"text": "a"}, "2": {"text": "c"}})
    resp = await client.get(f"/api/trpc/demo.echo,system.ping,demo.echo?batch=1&input={inputs}")
    assert resp.status == 200
    assert await resp.json() == [
        {"result": {"data": "a"}},
        {"result": {"data": "pong"}},
        {"result": {"data": "c"}},
    ]
    resp = await client.get(f"/api/trpc/demo.echo,boom?batch=1&input={enc({'0': {'text': 'a'}})}")
    assert resp.status == 207
    items = await resp.json()
    assert items[1]["error"]["data"] == {"code": "NOT_FOUND", "httpStatus": 404, "path": "boom"}
    resp = await client.post(
        "/api/trpc/subtract,subtract?batch=1",
        data='{"0":{"minuend":1,"subtrahend":1},"1":{"minuend":"x"}}',
        headers={"Content-Type": "application/json", **auth},
    )
    assert resp.status == 207
    first, second = await resp.json()
    assert first == {"result": {"data": 0}}
    assert second["error"]["data"]["code"] == "BAD_REQUEST"
    resp = await client.get("/api/trpc/nope")
    assert resp.status == 404


async def test_wrong_method_is_405_with_allow(client: Client, token: TokenFactory) -> None:
    resp = await client.get(f"/api/trpc/subtract?input={enc({'minuend': 1, 'subtrahend': 1})}")
    assert resp.status == 405
    assert resp.headers["Allow"] == "POST"
    assert (await resp.json())["error"]["data"]["code"] == "METHOD_NOT_SUPPORTED"
    resp = await client.post("/api/trpc/system.ping", headers={"Content-Type": "application/json"})
    assert resp.status == 405
    assert resp.headers["Allow"] == "GET"


async def test_bad_input_json_media_type_and_head(client: Client) -> None:
    resp = await client.get("/api/trpc/demo.echo?input=%7Bnot-json")
    assert resp.status == 400
    assert (await resp.json())["error"]["data"]["code"] == "BAD_REQUEST"
    resp = await client.post(
        "/api/trpc/subtract", data="a=1", headers={"Content-Type": "text/plain"}
    )
    assert resp.status == 415
    resp = await client.head("/api/trpc/system.ping")
    assert resp.status == 204


async def test_sse_tracked_subscription_and_resume(
    client: Client, token: TokenFactory, feed: demo.Feed
) -> None:
    params = enc({"token": token()})
    url = f"/api/trpc/demo.feed?connectionParams={params}&input={enc({'hospitalId': 'h1'})}"
    resp = await client.get(url, headers={"Accept": "text/event-stream"})
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "text/event-stream"
    assert resp.headers["Cache-Control"] == "no-store"
    (connected,) = await read_events(resp, 1)
    assert connected["event"] == "connected"
    first = feed.publish("h1")
    (event,) = await read_events(resp, 1)
    assert event["id"] == first
    assert orjson.loads(event["data"]) == {"hospitalId": "h1", "seq": 1}
    resp.close()  # dropped
    missed = [feed.publish("h1") for _ in range(2)]
    resp = await client.get(url, headers={"Accept": "text/event-stream", "Last-Event-ID": first})
    events = await read_events(resp, 3)
    assert events[0]["event"] == "connected"
    assert [e["id"] for e in events[1:]] == missed
    resp.close()
    # the inactivity path: lastEventId inside the input
    url2 = (
        f"/api/trpc/demo.feed?connectionParams={params}"
        f"&input={enc({'hospitalId': 'h1', 'lastEventId': missed[0]})}"
    )
    resp = await client.get(url2, headers={"Accept": "text/event-stream"})
    events = await read_events(resp, 2)
    assert events[1]["id"] == missed[1]
    resp.close()


async def test_sse_errors_are_serialized_and_completion_returns(
    client: Client, token: TokenFactory
) -> None:
    url = f"/api/trpc/demo.feed?input={enc({'hospitalId': 'h1'})}"
    resp = await client.get(url, headers={"Accept": "text/event-stream"})
    assert resp.status == 200
    connected, error = await read_events(resp, 2)
    assert connected["event"] == "connected"
    assert error["event"] == "serialized-error"
    assert orjson.loads(error["data"])["data"]["code"] == "UNAUTHORIZED"
    assert await resp.content.read() == b""  # the server ended the response
    params = enc({"token": token()})
    url = f"/api/trpc/demo.ticks?connectionParams={params}&input={enc({'count': 2})}"
    resp = await client.get(url, headers={"Accept": "text/event-stream"})
    events = await read_events(resp, 4)
    assert [e.get("event") for e in events] == ["connected", None, None, "return"]
    assert orjson.loads(events[2]["data"]) == {"n": 1}
    assert "id" not in events[1]
