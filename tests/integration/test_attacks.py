"""Attacks on a real server (started by `server.main`, guarded listener included), each run
while a bystander (an authenticated subscriber of h1's alerts, and /health) must keep working
within a bound (tests/integration/attack_kit.py). CONTRACT 5a: no one without a token can
degrade service for those with one; no one with a token can take more than their share.

Bounded in count and time, on 127.0.0.0/8 only. The single-frame and flood cases of one socket
are in tests/rpc/test_hostile_frames.py and test_hostile_floods.py."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
import pytest

from tests.integration.attack_kit import (
    BIG_MESSAGE,
    Bystander,
    Raw,
    attack_server,
    hold_while,
    nested,
    reader_fate,
    repeated,
    request,
    slow_sse_reader,
    slow_ws_reader,
)
from tests.integration.harness import token
from tests.rpc.wire import eventually

ANONYMOUS_LIMIT = 16_384
MIB = 1_048_576
HEADER_TIMEOUT_S = 0.5
JSON = {"Content-Type": "application/json"}
CREATE = "/api/trpc/healthcare.createAlert"


async def anonymous_heavy_posts(base: str, stop_after: int = 10_000) -> None:
    """Four anonymous clients posting 16 KiB hostile JSON in a loop, each refused."""

    async def client() -> None:
        async with aiohttp.ClientSession() as http:
            for n in range(stop_after):
                body = nested(ANONYMOUS_LIMIT) if n % 2 else repeated(ANONYMOUS_LIMIT)
                async with http.post(f"{base}{CREATE}", data=body, headers=JSON) as resp:
                    assert resp.status == (400 if n % 2 else 401)

    await asyncio.gather(*(client() for _ in range(4)))


async def test_anonymous_heavy_json_over_http(tmp_path: Path) -> None:
    async with attack_server(tmp_path) as running, aiohttp.ClientSession() as http:
        bystander = await Bystander.join(running, http)
        base, metrics = running.base_url, running.state.metrics
        for body in (nested(ANONYMOUS_LIMIT), repeated(ANONYMOUS_LIMIT)):
            async with http.post(f"{base}/api/trpc", data=body, headers=JSON) as resp:
                error = (await resp.json())["error"]  # too deep, or a batch too large
                assert (error["code"], error["data"]["code"]) == (-32600, "BAD_REQUEST")
        # Too deep: refused from its bytes. Within the depth and value limits: parsed (16 KiB
        # at most) and refused for want of a token.
        for body, status in ((nested(ANONYMOUS_LIMIT), 400), (repeated(ANONYMOUS_LIMIT), 401)):
            async with http.post(f"{base}{CREATE}", data=body, headers=JSON) as resp:
                assert resp.status == status
        for body in (nested(ANONYMOUS_LIMIT + 2), repeated(ANONYMOUS_LIMIT + 1)):
            for path in ("/api/trpc", "/api/trpc/healthcare.createAlert"):
                async with http.post(base + path, data=body, headers=JSON) as resp:
                    assert resp.status == 413
        assert metrics.oversize_messages.get("http") == 4
        attack = asyncio.ensure_future(anonymous_heavy_posts(base))
        await hold_while(attack, bystander)
        assert metrics.bad_frames.get("too_deep") >= 3
        await bystander.received_everything()
        await bystander.close()


async def test_authenticated_mebibyte_of_hostile_json_is_refused_quickly(tmp_path: Path) -> None:
    async with attack_server(tmp_path) as running, aiohttp.ClientSession() as http:
        bystander = await Bystander.join(running, http)
        headers = {**JSON, "Authorization": f"Bearer {token('nurse-9', 'nurse')}"}
        url = f"{running.base_url}/api/trpc/healthcare.createAlert"
        for body in (nested(MIB), repeated(MIB)) * 2:
            started = time.monotonic()
            async with http.post(url, data=body, headers=headers) as resp:
                assert resp.status == 400
                error = (await resp.json())["error"]
                assert error["data"]["code"] == "BAD_REQUEST"
                assert (
                    "nested too deeply" in error["message"] or "too many values" in error["message"]
                )
            assert time.monotonic() - started < 1.0
            await bystander.check()
        ws = await http.ws_connect(f"ws://127.0.0.1:{running.port}/api/trpc", headers=headers)
        for body in (nested(MIB), repeated(MIB)):
            await ws.send_str(body.decode())
            reply = await ws.receive_json(timeout=1.0)
            assert reply["error"]["data"]["code"] == "BAD_REQUEST"
        await ws.close()
        await bystander.received_everything()
        await bystander.close()


async def test_anonymous_heavy_json_over_websocket(tmp_path: Path) -> None:
    async with attack_server(tmp_path) as running, aiohttp.ClientSession() as http:
        bystander = await Bystander.join(running, http)
        url = f"ws://127.0.0.1:{running.port}/api/trpc"
        for body in (nested(ANONYMOUS_LIMIT), repeated(ANONYMOUS_LIMIT)):
            ws = await http.ws_connect(url)  # no token: the small limit applies
            await ws.send_str(body.decode())
            reply = await ws.receive_json(timeout=2.0)
            assert reply["id"] is None
            assert reply["error"]["data"]["code"] == "BAD_REQUEST"
            await bystander.check()
            await ws.send_str(body.decode() + " ")  # one byte over
            closing = await ws.receive(timeout=2.0)
            assert (closing.type, closing.data) == (aiohttp.WSMsgType.CLOSE, 1009)
            await ws.close()
        assert running.state.metrics.oversize_messages.get("ws") == 2
        await bystander.received_everything()
        await bystander.close()


async def upgrade(http: aiohttp.ClientSession, url: str, sockets: list[object]) -> int:
    """101 when upgraded (the socket is kept open), else the refusal's status."""
    try:
        sockets.append(await http.ws_connect(url))
    except aiohttp.WSServerHandshakeError as refused:
        return refused.status
    return 101


async def test_tokenless_upgrade_flood_from_one_address(tmp_path: Path) -> None:
    async with (
        attack_server(tmp_path, {"MAX_CONNECTIONS": "4"}) as running,
        aiohttp.ClientSession() as http,
    ):
        bystander = await Bystander.join(running, http)
        url = f"ws://127.0.0.1:{running.port}/api/trpc"
        held: list[object] = []
        statuses = [await upgrade(http, url, held) for _ in range(50)]
        assert statuses == [101] * 20 + [503] * 30  # MAX_UNAUTHENTICATED_PER_ADDRESS
        metrics = running.state.metrics
        assert metrics.connections_refused.get("anonymous_per_address") == 30
        assert running.state.anonymous.open == 20
        await bystander.check()
        # Another address still has its places, and a user with a token is not refused
        # although the anonymous sockets outnumber MAX_CONNECTIONS.
        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
        ) as other:
            assert await upgrade(other, url, held) == 101
            late = await http.ws_connect(
                url, headers={"Authorization": f"Bearer {token('nurse-7', 'nurse')}"}
            )
            await late.send_json({"jsonrpc": "2.0", "method": "system.ping", "id": 1})
            assert (await late.receive_json(timeout=2.0))["result"] == "pong"
            await late.close()
            for ws in held:
                assert isinstance(ws, aiohttp.ClientWebSocketResponse)
                await ws.close()
        await eventually(lambda: running.state.anonymous.open == 0, "the anonymous pool to empty")
        await bystander.received_everything()
        await bystander.close()


async def test_tokenless_upgrade_flood_from_many_addresses(tmp_path: Path) -> None:
    env = {"MAX_UNAUTHENTICATED_CONNECTIONS": "40", "MAX_UNAUTHENTICATED_PER_ADDRESS": "4"}
    async with attack_server(tmp_path, env) as running, aiohttp.ClientSession() as http:
        bystander = await Bystander.join(running, http)
        url = f"ws://127.0.0.1:{running.port}/api/trpc"
        held: list[object] = []
        sessions = [
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(f"127.0.0.{n}", 0)))
            for n in range(2, 14)
        ]
        try:
            results = [
                [await upgrade(session, url, held) for _ in range(5)] for session in sessions
            ]
            # Each address gets 4 (the fifth is over the per-address cap); past 40 in all,
            # each newcomer takes back the oldest place: the pool stays at its size.
            assert results == [[101] * 4 + [503]] * 12
            metrics = running.state.metrics
            assert metrics.connections_refused.get("anonymous_per_address") == 12
            assert metrics.connections_refused.get("anonymous_evicted") == 8
            assert running.state.anonymous.open == 40
            # A client that sends its token right after the upgrade, as the official tRPC
            # client does, still gets in while the flood holds the pool.
            late = await http.ws_connect(url)
            await late.send_json(
                {
                    "jsonrpc": "2.0",
                    "id": 1,
                    "method": "auth.authenticate",
                    "params": {"token": token("nurse-9", "nurse")},
                }
            )
            assert (await late.receive_json(timeout=5))["result"]["sub"] == "nurse-9"
            await late.close()
            await bystander.check()
            authenticated = await http.ws_connect(
                url, headers={"Authorization": f"Bearer {token('nurse-8', 'nurse')}"}
            )
            await authenticated.close()
        finally:
            for ws in held:
                assert isinstance(ws, aiohttp.ClientWebSocketResponse)
                await ws.close()
            for session in sessions:
                await session.close()
        await bystander.received_everything()
        await bystander.close()


async def trickle(raw: Raw) -> float:
    """Part of a request line, then one more byte of it every 50 ms (valid so far, so only
    the deadline can end it): seconds from the connect until the server hangs up. The 50 ms
    is the attacker's pace, not a wait for the server."""
    await raw.send(b"GET /health?pad=")
    async with asyncio.timeout(5.0):
        while True:
            try:
                async with asyncio.timeout(0.05):
                    chunk = await raw.loop.sock_recv(raw.sock, 1024)
            except TimeoutError:
                try:
                    await raw.send(b"x")
                except (BrokenPipeError, ConnectionResetError):
                    break
                continue
            except ConnectionResetError:
                break
            assert not chunk, chunk  # no answer: the connection is cut, not served
            break
    return time.monotonic() - raw.opened


async def test_slow_headers_are_cut_off_at_the_deadline(tmp_path: Path) -> None:
    env = {"HEADER_TIMEOUT_SECONDS": str(HEADER_TIMEOUT_S)}
    async with attack_server(tmp_path, env) as running, aiohttp.ClientSession() as http:
        bystander = await Bystander.join(running, http)
        metrics = running.state.metrics
        attackers = [await Raw.open(running.port) for _ in range(50)]
        attack = asyncio.ensure_future(asyncio.gather(*(trickle(raw) for raw in attackers)))
        await bystander.check()  # within the deadline: the attack is still on
        assert not attack.done()
        lifetimes = await attack
        assert all(HEADER_TIMEOUT_S * 0.9 <= t < HEADER_TIMEOUT_S + 2.0 for t in lifetimes)
        assert metrics.http_timeouts.get("headers") == 50
        # A kept-alive connection: the deadline starts again with the next request's first
        # byte, so a stalled second request is cut off too.
        raw = await Raw.open(running.port)
        await raw.send(request("GET", "/health"))
        assert (await raw.head()).startswith(b"HTTP/1.1 200")
        raw.opened = time.monotonic()
        assert await trickle(raw) >= HEADER_TIMEOUT_S * 0.9
        raw.close()
        assert metrics.http_timeouts.get("headers") == 51
        for raw in attackers:
            raw.close()
        await bystander.check()
        await bystander.received_everything()
        await bystander.close()


async def test_idle_keep_alive_connections_are_closed(tmp_path: Path) -> None:
    env = {"KEEPALIVE_TIMEOUT_SECONDS": "0.5"}
    async with attack_server(tmp_path, env) as running:
        guard = running.state.guard
        idle = [await Raw.open(running.port) for _ in range(10)]
        for raw in idle:
            await raw.send(request("GET", "/health"))
            assert (await raw.head()).startswith(b"HTTP/1.1 200")
        answered = time.monotonic()
        for raw in idle:
            await raw.until_closed(within_s=3.0)
        assert time.monotonic() - answered >= 0.45
        await eventually(lambda: guard.http_open == 0, "the HTTP pool to empty")
        assert running.state.metrics.http_timeouts.get("headers") == 0  # idle, not slow


async def test_http_connection_cap_refuses_at_once_and_spares_websockets(tmp_path: Path) -> None:
    env = {"MAX_HTTP_CONNECTIONS": "20", "HEADER_TIMEOUT_SECONDS": "30"}
    async with attack_server(tmp_path, env) as running, aiohttp.ClientSession() as http:
        state, metrics = running.state, running.state.metrics
        bystander = await Bystander.join(running, http)  # two WebSockets: not in the pool
        await eventually(lambda: state.guard.http_open == 0, "the set-up's HTTP to close")
        idle = [await Raw.open(running.port) for _ in range(20)]
        await eventually(lambda: state.guard.http_open == 20, "the idle sockets to be counted")
        for n in range(5):
            refused = await Raw.open(running.port)
            started = time.monotonic()
            answer = await refused.until_closed(within_s=1.0)
            assert answer.startswith(b"HTTP/1.1 503 Service Unavailable\r\n"), answer
            assert time.monotonic() - started < 0.5
            assert metrics.connections_refused.get("http_capacity") == n + 1
            refused.close()
        # The upgraded sockets still work, over the WebSocket, while HTTP is full.
        await bystander.check(via="ws", health=False)
        assert state.guard.http_open == 20
        assert metrics.connections_open.get("ws") == 2
        for raw in idle:
            raw.close()
        await eventually(lambda: state.guard.http_open == 0, "the HTTP pool to empty")
        await bystander.check()
        await bystander.received_everything()
        await bystander.close()


async def test_slow_readers_are_closed_past_the_outbound_budget(tmp_path: Path) -> None:
    """Readers that never read, past a 2 MiB budget for all of them: the server closes them
    (furthest behind first) rather than holding their backlog, and never holds more."""
    env = {
        "SEND_QUEUE_TOTAL_BYTES": str(2 * MIB),
        "SEND_QUEUE_BYTES": str(64 * MIB),  # only the global budget can close them
        "SEND_QUEUE_FRAMES": "1000000",
    }
    async with attack_server(tmp_path, env) as running, aiohttp.ClientSession() as http:
        state, metrics = running.state, running.state.metrics
        bystander = await Bystander.join(running, http)
        ws_readers = [await slow_ws_reader(running.port, f"slow-ws-{n}") for n in range(12)]
        sse_readers = [await slow_sse_reader(running.port, f"slow-sse-{n}") for n in range(6)]
        await eventually(lambda: metrics.subscriptions_open.get() == 19, "every subscription")
        peak = 0
        # The kernel's buffers take a few MB per socket before any backlog forms: alerts
        # are raised until the budget has closed a third of the readers, or at most 4000.
        for n in range(4000):
            await bystander.raise_alert(BIG_MESSAGE)
            peak = max(peak, state.budget.charged)
            if metrics.outbound_budget_closes.get() >= 6:
                break
            if n % 250 == 249:
                await bystander.check()
        closes = int(metrics.outbound_budget_closes.get())
        assert closes >= 6
        assert peak <= 2 * MIB  # shed on the spot: never above the budget
        fates = await asyncio.gather(*(reader_fate(raw) for raw in ws_readers))
        assert set(fates) <= {"4008", "reset", "served"}
        assert "4008" in fates, fates
        slow = [f"slow-ws-{n}" for n in range(12)] + [f"slow-sse-{n}" for n in range(6)]

        def gone() -> int:
            return sum(1 for sub in slow if not state.registry.connections_of(sub))

        # Every close was one of the slow readers (the bystander is still served), and every
        # reader that answered the probe is one the server still holds. (Which of equally slow
        # readers goes first is not observable from outside; the order is OutboundBudget.shed's.)
        await eventually(lambda: gone() == closes, "the closed readers to be gone")
        assert fates.count("served") == sum(
            1 for n in range(12) if state.registry.connections_of(f"slow-ws-{n}")
        )
        await bystander.check()
        await bystander.received_everything()
        for raw in ws_readers + sse_readers:
            raw.close()
        await bystander.close()


async def test_a_stalled_sse_client_frees_its_slot(tmp_path: Path) -> None:
    env = {"MAX_CONNECTIONS_PER_USER": "1"}
    async with (
        attack_server(tmp_path, env, stall_s=0.5) as running,
        aiohttp.ClientSession() as http,
    ):
        state, metrics = running.state, running.state.metrics
        bystander = await Bystander.join(running, http)
        stalled = await slow_sse_reader(running.port, "stalled")
        await eventually(lambda: state.registry.connections_of("stalled") == 1, "the stream")
        url = f"ws://127.0.0.1:{running.port}/api/trpc"
        headers = {"Authorization": f"Bearer {token('stalled', 'nurse')}"}
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(url, headers=headers)
        assert refused.value.status == 429  # its one slot is held by the stalled stream
        for _ in range(2000):
            await bystander.raise_alert(BIG_MESSAGE)
            if metrics.sse_stalls.get() or not state.registry.connections_of("stalled"):
                break
        await eventually(lambda: metrics.sse_stalls.get() == 1, "the stall to be noticed")
        await eventually(lambda: not state.registry.connections_of("stalled"), "the slot")
        await stalled.until_closed()
        ws = await http.ws_connect(url, headers=headers)  # the slot is usable again
        await ws.send_json({"jsonrpc": "2.0", "method": "system.ping", "id": 1})
        assert (await ws.receive_json(timeout=2.0))["result"] == "pong"
        await ws.close()
        await bystander.check()
        await bystander.received_everything()
        stalled.close()
        await bystander.close()
