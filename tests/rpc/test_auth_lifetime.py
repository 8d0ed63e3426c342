"""How long a socket's identity lasts (CONTRACT 5): a token expiring on a live tRPC socket,
on a socket authenticated at the handshake, and the deadline for sockets that never
authenticate. The JSON-RPC expiry and refresh cases are in test_jsonrpc_ws.py."""

from __future__ import annotations

import time

from rpc.auth import AuthConfig, issue_token
from rpc.limits import Limits
from tests.conftest import SECRET, make_state, make_token
from tests.rpc import demo
from tests.rpc.wire import call, ping, recv, recv_close, send_json, serve

AUTH = AuthConfig(SECRET, leeway_seconds=0)
DEADLINE_S = 0.2


def short_token(sub: str = "n") -> str:
    """exp is a whole second: this token expires 0.5 to 1.5 s from now."""
    return issue_token(
        AUTH, sub=sub, role="nurse", hospitals=["h1"], ttl_seconds=1.5, now=time.time()
    )


async def test_expiry_on_a_trpc_socket_ends_its_subscriptions_then_closes_4001() -> None:
    feed = demo.Feed()
    state = make_state(feed)
    state.auth = AUTH
    async with serve(state) as client:
        ws = await client.ws_connect("/api/trpc?connectionParams=1")
        await send_json(ws, {"method": "connectionParams", "data": {"token": short_token()}})
        for sub_id in (7, 8):
            await send_json(
                ws,
                {
                    "id": sub_id,
                    "method": "subscription",
                    "params": {"path": "demo.feed", "input": {"hospitalId": "h1"}},
                },
            )
            assert await recv(ws) == {"id": sub_id, "result": {"type": "started"}}
        frames = [await recv(ws) for _ in range(4)]
        for sub_id in (7, 8):
            mine = [f for f in frames if f["id"] == sub_id]
            assert mine[0]["error"]["code"] == -32001
            assert mine[0]["error"]["message"] == "Token expired"
            assert mine[0]["error"]["data"]["code"] == "UNAUTHORIZED"
            assert mine[1] == {"id": sub_id, "result": {"type": "stopped"}}
        closing = await recv_close(ws)
        assert (closing.data, closing.extra) == (4001, "Token expired")
    assert not feed.streams  # the sources were released
    assert state.metrics.token_expiries.get() == 1
    assert state.metrics.subscriptions_open.get() == 0


async def test_expiry_of_a_token_given_at_the_handshake_closes_4001() -> None:
    state = make_state(demo.Feed())
    state.auth = AUTH
    async with serve(state) as client:
        ws = await client.ws_connect(
            "/api/trpc", headers={"Authorization": f"Bearer {short_token()}"}
        )
        assert (await call(ws, "system.whoami"))["result"]["sub"] == "n"
        closing = await recv_close(ws)
        assert closing.data == 4001
    assert state.metrics.token_expiries.get() == 1


async def test_a_socket_that_never_authenticates_is_closed_4001() -> None:
    state = make_state(demo.Feed(), Limits(auth_timeout_s=DEADLINE_S))
    async with serve(state) as client:
        jsonrpc_ws = await client.ws_connect("/api/trpc")
        trpc_ws = await client.ws_connect("/api/trpc?connectionParams=1")  # params never sent
        reply = await call(jsonrpc_ws, "system.whoami")  # before the deadline: UNAUTHORIZED
        assert reply["error"]["code"] == -32001
        assert reply["error"]["message"] == "Authentication required"
        await ping(jsonrpc_ws)  # public procedures work meanwhile
        for ws in (jsonrpc_ws, trpc_ws):
            closing = await recv_close(ws)
            assert (closing.data, closing.extra) == (4001, "Authentication timeout")
        assert not state.sessions
    assert state.metrics.auth_timeouts.get() == 2


async def test_authenticating_in_time_cancels_the_deadline() -> None:
    state = make_state(demo.Feed(), Limits(auth_timeout_s=DEADLINE_S))
    async with serve(state) as client:
        by_call = await client.ws_connect("/api/trpc")
        assert "result" in await call(by_call, "auth.authenticate", {"token": make_token()})
        by_params = await client.ws_connect("/api/trpc?connectionParams=1")
        await send_json(by_params, {"method": "connectionParams", "data": {"token": make_token()}})
        by_header = await client.ws_connect(
            "/api/trpc", headers={"Authorization": f"Bearer {make_token()}"}
        )
        # A later anonymous socket reaching its deadline proves the others' deadlines passed.
        late = await client.ws_connect("/api/trpc")
        assert (await recv_close(late)).data == 4001
        for ws in (by_call, by_header):
            await ping(ws)
        await send_json(by_params, {"id": 1, "method": "query", "params": {"path": "system.ping"}})
        assert await recv(by_params) == {"id": 1, "result": {"type": "data", "data": "pong"}}
        for ws in (by_call, by_params, by_header):
            await ws.close()
    assert state.metrics.auth_timeouts.get() == 1
