"""Origins (CONTRACT 5): WebSocket upgrades and CORS are checked against ALLOWED_ORIGINS
(default: the same host, plus localhost during development); no Origin header is allowed."""

from __future__ import annotations

import pytest
from aiohttp import WSServerHandshakeError

from rpc.transport_aiohttp import OriginPolicy, ServerState
from tests.conftest import make_state, make_token
from tests.rpc import demo
from tests.rpc.wire import UPGRADE, enc, ping, read_events, serve

WARD = "https://ward.example"
EVIL = "https://evil.example"


def state_with(policy: OriginPolicy) -> ServerState:
    state = make_state(demo.Feed())
    state.origins = policy
    return state


async def test_a_foreign_origin_is_refused_at_the_upgrade() -> None:
    state = state_with(OriginPolicy(allowed=frozenset({WARD})))
    async with serve(state) as client:
        with pytest.raises(WSServerHandshakeError) as refused:
            await client.ws_connect("/api/trpc", origin=EVIL)
        assert refused.value.status == 403
        # the same with a good token: the origin is checked first, and nothing is upgraded
        resp = await client.get(
            "/api/trpc",
            headers={**UPGRADE, "Origin": EVIL, "Authorization": f"Bearer {make_token()}"},
        )
        assert resp.status == 403
        assert "Sec-WebSocket-Accept" not in resp.headers
        assert "Access-Control-Allow-Origin" not in resp.headers
        assert resp.headers["Connection"].lower() == "close"
        assert (await resp.json())["error"]["message"] == "Origin not allowed"
        assert not state.sessions
    assert state.metrics.connections_refused.get("origin") == 2


async def test_an_allowed_origin_and_no_origin_upgrade() -> None:
    state = state_with(OriginPolicy(allowed=frozenset({WARD})))
    async with serve(state) as client:
        for origin in (WARD, WARD + "/", None):
            ws = await client.ws_connect("/api/trpc", origin=origin)
            await ping(ws)
            await ws.close()
    assert state.metrics.connections_refused.total() == 0


async def test_cors_preflight_for_allowed_and_foreign_origins() -> None:
    state = state_with(OriginPolicy(allowed=frozenset({WARD})))
    async with serve(state) as client:
        preflight = {
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        }
        for path in ("/api/trpc", "/api/trpc/system.ping"):
            resp = await client.options(path, headers={"Origin": WARD, **preflight})
            assert resp.status == 204
            assert resp.headers["Access-Control-Allow-Origin"] == WARD
            assert "POST" in resp.headers["Access-Control-Allow-Methods"]
            assert "authorization" in resp.headers["Access-Control-Allow-Headers"]
            assert "Origin" in resp.headers["Vary"]
            resp = await client.options(path, headers={"Origin": EVIL, **preflight})
            assert resp.status == 403
            assert "Access-Control-Allow-Origin" not in resp.headers
        # the actual requests
        resp = await client.get("/api/trpc/system.ping", headers={"Origin": WARD})
        assert resp.status == 200
        assert resp.headers["Access-Control-Allow-Origin"] == WARD
        resp = await client.get("/api/trpc/system.ping", headers={"Origin": EVIL})
        assert resp.status == 403
        resp = await client.post(
            "/api/trpc",
            data='{"jsonrpc":"2.0","method":"system.ping","id":1}',
            headers={"Origin": EVIL},
        )
        assert resp.status == 403
        url = f"/api/trpc/demo.ticks?input={enc({'count': 1})}"
        resp = await client.get(url, headers={"Origin": EVIL, "Accept": "text/event-stream"})
        assert resp.status == 403  # SSE too
        resp = await client.get("/health", headers={"Origin": EVIL})
        assert resp.status == 200  # outside /api/trpc: no browser-callable procedure
    assert state.metrics.connections_refused.get("origin") == 5


async def test_default_policy_same_host_and_localhost_in_development() -> None:
    same_host = "http://{host}"  # the Host the client connects to, port included
    cases = [
        # (policy, origin, allowed)
        (OriginPolicy(allow_localhost=False), same_host, True),
        (OriginPolicy(allow_localhost=False), "http://127.0.0.1:1", False),
        (OriginPolicy(allow_localhost=False), "http://localhost:5173", False),
        (OriginPolicy(allow_localhost=True), "http://localhost:5173", True),
        (OriginPolicy(allow_localhost=True), "http://[::1]:8080", True),
        (OriginPolicy(allow_localhost=True), EVIL, False),
        (OriginPolicy(allow_localhost=True), "null", False),  # sandboxed frames, file://
        (OriginPolicy(allow_localhost=True), "file://", False),
        (OriginPolicy(allowed=frozenset({WARD})), "http://localhost:5173", False),
        (OriginPolicy(allowed=frozenset({"*"})), EVIL, True),
    ]
    for policy, origin, allowed in cases:
        state = state_with(policy)
        async with serve(state) as server:
            origin = origin.format(host=f"{server.host}:{server.port}")
            if allowed:
                ws = await server.ws_connect("/api/trpc", origin=origin)
                await ping(ws)
                await ws.close()
            else:
                with pytest.raises(WSServerHandshakeError) as refused:
                    await server.ws_connect("/api/trpc", origin=origin)
                assert refused.value.status == 403, (policy, origin)


async def test_origin_check_applies_to_sse_with_a_token() -> None:
    state = state_with(OriginPolicy(allowed=frozenset({WARD})))
    async with serve(state) as client:
        url = f"/api/trpc/demo.ticks?connectionParams={enc({'token': make_token()})}"
        url += f"&input={enc({'count': 1})}"
        resp = await client.get(url, headers={"Origin": WARD, "Accept": "text/event-stream"})
        assert resp.status == 200
        assert resp.headers["Access-Control-Allow-Origin"] == WARD
        events = await read_events(resp, 3)
        assert [e.get("event") for e in events] == ["connected", None, "return"]
