"""Nodes of one cluster (REDIS_URL, one PostgreSQL database) as users run them: `staffOnline`
and MAX_CONNECTIONS_PER_USER count every node's connections, a node killed with SIGKILL drops
out of the others' counts by itself, and `/health` names the node and says when Redis is
gone (200 still: only storage down is 503) and when it is back."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.integration.harness import SECRET, RpcClient, running_server, token
from tests.integration.server import ServerProcess, start_server
from tests.redis_support import OwnRedis, new_prefix, poll, shared_cluster

WAIT_S = 10.0
# The default TTL (6 s) and check (2 s): a dead node is gone from the others' views by 8 s.
EXPIRY_S = 15.0


async def health(http: aiohttp.ClientSession, url: str) -> tuple[int, dict[str, Any]]:
    async with http.get(url + "/health") as resp:
        return resp.status, await resp.json()


async def connect(http: aiohttp.ClientSession, server: ServerProcess, sub: str) -> RpcClient:
    bearer = token(sub, "nurse", ["h1"])
    ws = await http.ws_connect(server.ws_url, headers={"Authorization": f"Bearer {bearer}"})
    return RpcClient(ws)


async def staff_online_reaches(client: RpcClient, sid: str, want: int, timeout_s: float) -> None:
    """Metrics pushed on `sid` until one says `want` staff are online."""
    deadline = time.monotonic() + timeout_s
    seen = []
    while time.monotonic() < deadline:
        event = await client.next_event(sid)
        seen.append(event["data"]["staffOnline"])
        if seen[-1] == want:
            return
    raise AssertionError(f"staffOnline never reached {want}: {seen}")


@pytest.mark.slow
async def test_two_nodes_count_each_others_connections(tmp_path: Path, postgres_url: str) -> None:
    async with shared_cluster() as (redis_url, prefix):
        env = {
            "DATABASE_URL": postgres_url,
            "REDIS_URL": redis_url,
            "ALERTWIRE_CLUSTER": prefix,
            "JWT_SECRET": SECRET,
            "MAX_CONNECTIONS_PER_USER": "2",
        }
        a = await start_server(tmp_path, NODE_ID="node-a", **env)
        b = await start_server(tmp_path, NODE_ID="node-b", **env)
        try:
            await _scenario(a, b)
        finally:
            for server in (a, b):
                if server.proc.returncode is None:
                    server.proc.kill()
                    await server.proc.wait()


async def _scenario(a: ServerProcess, b: ServerProcess) -> None:
    async with aiohttp.ClientSession() as http:
        for server, name in ((a, "node-a"), (b, "node-b")):
            status, body = await health(http, server.url)
            assert (status, body["node"], body["bus"]) == (200, name, "ok")
        viewer = await connect(http, b, "nurse-1")
        sid = await viewer.subscribe(
            "healthcare.subscribeToMetrics", {"hospitalId": "h1", "intervalMs": 250}
        )
        await staff_online_reaches(viewer, sid, 1, WAIT_S)
        on_a = [await connect(http, a, "nurse-2") for _ in range(2)]
        await staff_online_reaches(viewer, sid, 2, WAIT_S)  # pushed on b for a's sockets

        # nurse-2 has no socket on b, but two on a: the cap counts them.
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await connect(http, b, "nurse-2")
        assert refused.value.status == 429

        a.send_signal(signal.SIGKILL)
        await a.proc.wait()
        await staff_online_reaches(viewer, sid, 1, EXPIRY_S)  # a's sockets expired
        again = await connect(http, b, "nurse-2")
        await staff_online_reaches(viewer, sid, 2, WAIT_S)
        for client in (again, viewer, *on_a):
            await client.close()
    assert await b.stop(wait_s=10) == 0


async def test_health_says_when_redis_is_gone_and_back(tmp_path: Path, postgres_url: str) -> None:
    own = OwnRedis(tmp_path)
    await own.start()
    try:
        env = {"REDIS_URL": own.url, "DATABASE_URL": postgres_url, "NODE_ID": "node-h"}
        async with (
            running_server(tmp_path, ALERTWIRE_CLUSTER=new_prefix(), **env) as running,
            aiohttp.ClientSession() as http,
        ):
            url = running.base_url
            status, body = await health(http, url)
            assert (status, body["status"], body["node"], body["bus"]) == (
                200,
                "ok",
                "node-h",
                "ok",
            )

            async def bus_is(want: str) -> bool:
                status, body = await health(http, url)
                assert status == 200, body  # Redis down is no reason to take the node out
                assert body["storage"] == "ok"
                return bool(body["bus"] == want)

            await own.stop()
            await poll(lambda: bus_is("degraded"), "bus degraded", WAIT_S)
            await own.start()
            await poll(lambda: bus_is("ok"), "bus ok again", WAIT_S)
    finally:
        await own.stop()


async def test_one_node_names_itself_and_has_no_bus(tmp_path: Path) -> None:
    async with (
        running_server(tmp_path, NODE_ID="solo-1") as running,
        aiohttp.ClientSession() as http,
    ):
        status, body = await health(http, running.base_url)
        assert (status, body["node"]) == (200, "solo-1")
        assert "bus" not in body
