"""Hostile volume: floods, oversize frames, batches and clients that never read. Each case asserts
its documented reaction and the metric that counts it; the arena (tests/rpc/arena.py) checks that
the server, a bystander socket and the task count are unharmed."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from aiohttp import ClientWebSocketResponse, WSMsgType, WSServerHandshakeError

from rpc.limits import Limits
from tests.conftest import make_token
from tests.rpc.arena import (
    ATTACKER,
    MAX_BIG_EVENTS,
    Arena,
    Case,
    arena,
    bearer,
    marker,
    overflow_send_queue,
    registry,
)
from tests.rpc.wire import call, eventually, ping, recv, recv_close, send_json

CASES, case = registry()
TOO_MANY_REQUESTS = -32029


@case(Limits(rate_per_10s=5))
async def request_flood_beyond_the_rate_limit(a: Arena) -> None:
    """TOO_MANY_REQUESTS replies, not a disconnect."""
    ws = await a.connect()
    for n in range(30):
        await send_json(ws, {"jsonrpc": "2.0", "method": "system.ping", "id": n})
    replies = [await recv(ws) for _ in range(30)]
    assert [r["id"] for r in replies] == list(range(30))  # every request answered, in order
    assert [r.get("result") for r in replies[:5]] == ["pong"] * 5
    for reply in replies[5:]:
        assert reply["error"]["code"] == TOO_MANY_REQUESTS
        assert reply["error"]["message"] == "Rate limit exceeded (5 requests per 10 s)"
        assert reply["error"]["data"] == {
            "code": "TOO_MANY_REQUESTS",
            "httpStatus": 429,
            "path": "system.ping",
        }
    assert not ws.closed
    assert a.metrics.rate_limited.get("ws") == 25


@case(Limits(rate_per_10s=5))
async def token_guessing_is_rate_limited(a: Arena) -> None:
    ws = await a.anonymous()
    codes = [
        (await call(ws, "auth.authenticate", {"token": f"guess-{n}"}, id=n))["error"]["code"]
        for n in range(8)
    ]
    assert codes == [-32001] * 5 + [TOO_MANY_REQUESTS] * 3
    assert a.metrics.auth_failures.get("malformed") == 5


@case(Limits(rate_per_10s=5))
async def ping_flood(a: Arena) -> None:
    """tRPC's PING keep-alive is answered PONG and does not count against the rate limit."""
    ws = await a.connect()
    for _ in range(500):
        await ws.send_str("PING")
    for _ in range(500):
        msg = await ws.receive(timeout=5)
        assert (msg.type, msg.data) == (WSMsgType.TEXT, "PONG")
    await ping(ws)  # not rate limited
    assert a.metrics.rate_limited.total() == 0


@case()
async def notification_flood_gets_no_replies(a: Arena) -> None:
    ws = await a.connect()
    for _ in range(200):
        await send_json(ws, {"jsonrpc": "2.0", "method": "system.ping"})
        await send_json(ws, {"jsonrpc": "2.0", "method": "no.such.method"})
    await send_json(ws, [{"jsonrpc": "2.0", "method": "system.ping"}] * 50)
    assert await marker(ws) == []


@case(Limits(max_batch=100, max_json_values=100_000))
async def array_of_ten_thousand_elements(a: Arena) -> None:
    """A batch over the cap runs none of its requests: a JSON-RPC batch gets one error, a tRPC
    array an error for each request (the tRPC client would wait forever otherwise)."""
    ws = await a.connect()
    calls = [{"jsonrpc": "2.0", "method": "update", "params": [n], "id": n} for n in range(10_000)]
    await send_json(ws, calls)
    reply = await recv(ws)
    assert reply == {
        "jsonrpc": "2.0",
        "error": {
            "code": -32600,
            "message": "Batch too large (at most 100 requests)",
            "data": {"code": "BAD_REQUEST", "httpStatus": 400},
        },
        "id": None,
    }
    trpc = await a.trpc()
    queries = [
        {"id": n, "method": "query", "params": {"path": "system.ping"}} for n in range(10_000)
    ]
    await send_json(trpc, queries)
    replies = [await recv(trpc) for _ in range(10_000)]
    assert [r["id"] for r in replies] == list(range(10_000))
    assert all("jsonrpc" not in r for r in replies)  # in the tRPC dialect
    assert {r["error"]["message"] for r in replies} == {"Batch too large (at most 100 requests)"}
    assert {r["error"]["data"]["code"] for r in replies} == {"BAD_REQUEST"}
    assert await marker(ws) == []
    assert await marker(trpc) == []
    assert a.feed.updates == []
    assert a.metrics.bad_frames.get("batch_too_large") == 2


@case(Limits(max_batch=100, max_json_values=1000))
async def array_beyond_the_value_cap_is_refused_unparsed(a: Arena) -> None:
    """Past MAX_JSON_VALUES a message is refused from its bytes, before it is parsed: one error
    (id null) in either dialect, and the socket goes on serving."""
    ws = await a.connect()
    calls = [{"jsonrpc": "2.0", "method": "update", "params": [n], "id": n} for n in range(1000)]
    await send_json(ws, calls)
    reply = await recv(ws)
    assert reply["id"] is None
    assert reply["error"]["code"] == -32600
    assert reply["error"]["message"] == "JSON has too many values (at most 1000)"
    trpc = await a.trpc()
    queries = [{"id": n, "method": "query", "params": {"path": "system.ping"}} for n in range(300)]
    await send_json(trpc, queries)
    assert (await recv(trpc))["error"]["message"] == "JSON has too many values (at most 1000)"
    assert await marker(ws) == []
    assert await marker(trpc) == []
    assert a.feed.updates == []
    assert a.metrics.bad_frames.get("too_many_values") == 2


@case(Limits(max_batch=100, rate_per_10s=0))
async def batch_at_the_cap_is_served(a: Arena) -> None:
    ws = await a.connect()
    await send_json(ws, [{"jsonrpc": "2.0", "method": "system.ping", "id": n} for n in range(100)])
    reply = await recv(ws)
    assert [r["id"] for r in reply] == list(range(100))
    trpc = await a.trpc()
    await send_json(
        trpc, [{"id": n, "method": "query", "params": {"path": "system.ping"}} for n in range(100)]
    )
    assert [(await recv(trpc))["id"] for _ in range(100)] == list(range(100))


@case(Limits(max_subscriptions_per_connection=3))
async def subscription_flood_beyond_the_cap(a: Arena) -> None:
    ws = await a.trpc()
    for n in range(6):
        params = {"path": "demo.feed", "input": {"hospitalId": "h1"}}
        await send_json(ws, {"id": n, "method": "subscription", "params": params})
    replies = [await recv(ws) for _ in range(6)]
    assert [r.get("result") for r in replies[:3]] == [{"type": "started"}] * 3
    for reply in replies[3:]:
        assert reply["error"]["message"] == "Too many subscriptions on this connection (limit 3)"
        assert reply["error"]["data"]["code"] == "TOO_MANY_REQUESTS"
    assert len(a.feed.streams) == 3
    assert a.metrics.subscriptions_refused.get() == 3
    assert a.metrics.subscriptions_open.get() == 3
    await ws.close()
    await eventually(lambda: not a.feed.streams, "the subscriptions to be released")
    assert a.metrics.subscriptions_open.get() == 0


@case(Limits(max_connections_per_user=2))
async def connection_flood_of_one_user(a: Arena) -> None:
    """The newest connections are refused (429 at the handshake, TOO_MANY_REQUESTS when the
    token comes later); the older ones keep working."""
    token = make_token(sub=ATTACKER)
    first = await a.connect(token)
    second = await a.connect(token)
    for _ in range(3):
        with pytest.raises(WSServerHandshakeError) as refused:
            await a.client.ws_connect("/api/trpc", headers=bearer(token))
        assert refused.value.status == 429
    late = await a.anonymous()
    reply = await call(late, "auth.authenticate", {"token": token})
    assert (
        reply["error"]["message"] == "Too many connections for this user (limit 2); close one first"
    )
    await ping(first)
    await ping(second)
    assert a.metrics.connections_refused.get("per_user") == 4


@case(Limits(max_connections=3))
async def connection_flood_beyond_the_server_cap(a: Arena) -> None:
    """The bystander holds one of the three places; a socket that authenticates later needs
    one too (it waits in the anonymous pool, which does not count)."""
    held = [await a.connect(make_token(sub=f"user-{n}")) for n in range(2)]
    waiting = await a.anonymous()
    for n in range(3):
        with pytest.raises(WSServerHandshakeError) as refused:
            await a.client.ws_connect("/api/trpc", headers=bearer(make_token(sub=f"late-{n}")))
        assert refused.value.status == 503
    reply = await call(waiting, "auth.authenticate", {"token": make_token(sub="late")})
    assert reply["error"]["message"] == "Server is at capacity"
    for ws in held:
        await ping(ws)
    assert a.metrics.connections_refused.get("capacity") == 4


@case(
    Limits(
        max_connections=4,
        max_connections_per_user=2,
        max_unauthenticated_connections=3,
        max_unauthenticated_per_address=0,
    )
)
async def concurrent_handshake_burst(a: Arena) -> None:
    """Thirty upgrades at once cannot slip past the caps between check and upgrade, for
    authenticated sockets and for the anonymous pool alike (where a newcomer takes back the
    oldest place: the pool never holds more than its size)."""
    token = make_token(sub=ATTACKER)

    async def attempt(headers: dict[str, str]) -> int:
        """101 when upgraded, else the refusal's status."""
        try:
            ws: ClientWebSocketResponse = await a.client.ws_connect("/api/trpc", headers=headers)
        except WSServerHandshakeError as refused:
            return refused.status
        a.sockets.append(ws)
        return 101

    same_user = await asyncio.gather(*(attempt(bearer(token)) for _ in range(30)))
    assert sorted(same_user) == [101] * 2 + [429] * 28
    before = len(a.sockets)
    anonymous = await asyncio.gather(*(attempt({}) for _ in range(30)))
    anonymous_sockets = a.sockets[before:]
    assert anonymous == [101] * 30  # a pool of their own, oldest out first
    assert a.state.anonymous.open == 3
    assert a.metrics.connections_refused.get("anonymous_evicted") == 27
    others = await asyncio.gather(
        *(attempt(bearer(make_token(sub=f"other-{n}"))) for n in range(30))
    )
    assert sorted(others) == [101] + [503] * 29  # the bystander + 2 + 1 = 4
    await eventually(lambda: len(a.state.sessions) == 4 + 3, "the taken-back sockets to close")
    outcomes = [await first_frame_or_ping(ws) for ws in anonymous_sockets]
    assert sorted(outcomes) == ["closed 1013"] * 27 + ["open"] * 3


async def first_frame_or_ping(ws: ClientWebSocketResponse) -> str:
    """ "closed 1013" for a socket the server closed (its close frame is already there to
    read), "open" for one that still answers a ping."""
    with contextlib.suppress(ConnectionResetError):  # a closed one may refuse the ping
        await ws.send_str("PING")
    msg = await ws.receive(timeout=5)
    if msg.type is WSMsgType.CLOSE:
        return f"closed {msg.data}"
    assert msg.data == "PONG"
    return "open"


@case(Limits(max_message_bytes=4096))
async def oversize_frame(a: Arena) -> None:
    """Over MAX_MESSAGE_BYTES: the whole frame is read, then the socket closes with 1009."""
    ws = await a.connect()
    await ws.send_str("x" * 4097)
    closing = await recv_close(ws)
    assert (closing.data, closing.extra) == (1009, "Message too big")
    ws = await a.connect()
    await ws.send_bytes(b"x" * 4097)
    assert (await recv_close(ws)).data == 1009
    ws = await a.connect()
    await ws.send_str("é" * 2049)  # 2049 characters, 4098 bytes
    assert (await recv_close(ws)).data == 1009
    ws = await a.connect()
    await ws.send_str('"' + "x" * 4094 + '"')  # exactly at the limit: served
    assert (await recv(ws))["error"]["code"] == -32600
    assert a.metrics.oversize_messages.get("ws") == 3


@case(Limits(max_message_bytes=1024))
async def frame_far_beyond_the_limit(a: Arena) -> None:
    """Beyond 8 times the limit aiohttp stops reading at the frame header and fails the
    connection itself (1009 when the close still gets through)."""
    ws = await a.connect()
    await ws.send_str("x" * 64 * 1024)
    msg = await ws.receive(timeout=5)
    assert msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.ERROR)
    if msg.type is WSMsgType.CLOSE:
        assert msg.data == 1009
    await eventually(lambda: a.metrics.oversize_messages.get("ws") == 1, "the oversize count")


@case(Limits(send_queue_frames=8))
async def client_that_stops_reading_is_closed_4008(a: Arena) -> None:
    ws = await overflow_send_queue(a)
    frames = 0
    while True:  # reading again: what was written before the overflow, then the close
        msg = await ws.receive(timeout=5)
        if msg.type is not WSMsgType.TEXT:
            break
        frames += 1
    assert msg.type is WSMsgType.CLOSE
    assert (msg.data, msg.extra) == (4008, "Send queue full; reconnect and resume")
    assert frames < MAX_BIG_EVENTS  # some were dropped: the client resumes by lastEventId


@case(Limits(send_queue_frames=8))
async def client_that_never_reads_is_cut_off(a: Arena) -> None:
    """It cannot even take the close frame: the server aborts the socket after a grace
    period, releasing its buffers, instead of waiting for it forever."""
    await overflow_send_queue(a)
    attacker = [s for s in a.state.sessions if s.principal and s.principal.sub == ATTACKER]
    await eventually(lambda: not (set(attacker) & a.state.sessions), "the socket to be dropped")
    assert not a.feed.streams


@pytest.mark.parametrize(("limits", "run"), CASES)
async def test_hostile_flood(limits: Limits, run: Case) -> None:
    async with arena(limits) as a:
        await run(a)
