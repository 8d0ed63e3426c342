"""The admin procedures across two nodes of one cluster (REDIS_URL, one PostgreSQL database):
`stats` lists every node, `disconnect` closes the user's connections on the other node too and
counts them, a revocation made on one node closes and refuses the token on the other, and a
node that starts afterwards loads it from the store."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from server.main import Running
from tests.integration.harness import RpcClient, running_server
from tests.integration.test_admin import ADMIN, H1, closed_with, minted, whoami_status
from tests.polling import until
from tests.redis_support import shared_cluster

WAIT_S = 5.0


@contextlib.asynccontextmanager
async def node(tmp_path: Path, name: str, env: dict[str, str]) -> AsyncIterator[Running]:
    workdir = tmp_path / name
    workdir.mkdir(exist_ok=True)
    async with running_server(workdir, NODE_ID=name, **env) as running:
        yield running


async def stats_showing(admin: RpcClient, connections: int) -> dict[str, Any]:
    """admin.stats, asked again until the cluster's view has every connection opened."""
    found: dict[str, Any] = {}

    async def complete() -> bool:
        nonlocal found
        found = await admin.call("admin.stats", {})
        return bool(found["totals"]["connections"] == connections)

    await until(complete, f"admin.stats to count {connections} connections", WAIT_S)
    return found


@pytest.mark.slow
async def test_admin_procedures_act_on_every_node(tmp_path: Path, postgres_url: str) -> None:
    async with shared_cluster() as (redis_url, prefix):
        env = {"DATABASE_URL": postgres_url, "REDIS_URL": redis_url, "ALERTWIRE_CLUSTER": prefix}
        async with (
            node(tmp_path, "node-a", env) as a,
            node(tmp_path, "node-b", env) as b,
            aiohttp.ClientSession() as http,
        ):
            admin = await RpcClient.connect(http, a, ADMIN)
            n1_on_a = await RpcClient.connect(http, a, minted("n1"))
            n1_on_b = [await RpcClient.connect(http, b, minted("n1")) for _ in range(2)]
            n2_on_b = await RpcClient.connect(http, b, minted("n2", jti="n2-token"))
            await n1_on_b[0].subscribe("healthcare.subscribeToAlerts", H1)
            await n2_on_b.subscribe("healthcare.subscribeToMetrics", H1)
            stats = await stats_showing(admin, 5)
            assert stats["nodes"] == [
                {"node": "node-a", "connections": 2, "users": 2, "subscriptions": {}},
                {
                    "node": "node-b",
                    "connections": 3,
                    "users": 2,
                    "subscriptions": {
                        "healthcare.subscribeToAlerts": 1,
                        "healthcare.subscribeToMetrics": 1,
                    },
                },
            ]
            # n1 is on both nodes: counted once in the totals
            assert stats["totals"] == {"connections": 5, "users": 3, "subscriptions": 2}

            assert await admin.call("admin.disconnect", {"sub": "n1"}) == {"closed": 3}
            for client in (n1_on_a, *n1_on_b):
                await closed_with(client, 4001)

            # Revoked on node a: the connection on node b closes, and b refuses the token.
            revoked = await admin.call("admin.revokeTokens", {"jti": "n2-token"})
            assert revoked == {"revoked": True}
            await until(lambda: n2_on_b.ws.closed, "n2's socket on node b to close", WAIT_S)
            assert n2_on_b.ws.close_code == 4001
            assert await whoami_status(http, b, minted("n2", jti="n2-token")) == 401
            assert await whoami_status(http, b, minted("n2", jti="another")) == 200
            await admin.close()
        # A node that starts afterwards (the others gone) loads the revocation from the store.
        async with node(tmp_path, "node-c", env) as c, aiohttp.ClientSession() as http:
            assert await whoami_status(http, c, minted("n2", jti="n2-token")) == 401
