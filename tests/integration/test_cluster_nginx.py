"""Three nodes of one cluster (one PostgreSQL database, one Redis prefix) behind nginx running
deploy/nginx.conf: WebSocket and SSE subscribers connected through it get every alert created
through it, once and in order, whichever node each landed on; and the nodes count each client
under the address nginx saw (X-Forwarded-For, believed from TRUSTED_PROXIES=127.0.0.1), never
under one the client made up."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.integration.cluster import Device, Watcher, cluster, logged, problems, received
from tests.integration.nginx import Nginx, running_nginx
from tests.integration.server import ServerProcess
from tests.polling import until
from tests.redis_support import shared_cluster

ALERTS_PER_DEVICE = 5


@contextlib.asynccontextmanager
async def behind_nginx(
    tmp_path: Path, postgres_url: str
) -> AsyncIterator[tuple[list[ServerProcess], Nginx]]:
    async with shared_cluster() as (redis_url, prefix):
        env = {
            "REDIS_URL": redis_url,
            "ALERTWIRE_CLUSTER": prefix,
            "TRUSTED_PROXIES": "127.0.0.1",
            # One socket without a token per client address on each node: what the address
            # checks below count.
            "MAX_UNAUTHENTICATED_PER_ADDRESS": "1",
        }
        async with (
            cluster(tmp_path, postgres_url, 3, **env) as nodes,
            running_nginx(tmp_path, [node.port for node in nodes]) as nginx,
        ):
            yield nodes, nginx


async def nodes_answering(http: aiohttp.ClientSession, nginx: Nginx) -> set[str]:
    seen: set[str] = set()

    async def all_three() -> bool:
        async with http.get(nginx.url + "/health") as resp:
            seen.add(str((await resp.json())["node"]))
        return len(seen) == 3

    await until(all_three, "every node to answer through nginx", 10)
    return seen


@pytest.mark.slow
async def test_subscribers_through_nginx_get_every_alert_once_in_order(
    tmp_path: Path, postgres_url: str
) -> None:
    async with behind_nginx(tmp_path, postgres_url) as (_, nginx), aiohttp.ClientSession() as http:
        assert await nodes_answering(http, nginx) == {"node-0", "node-1", "node-2"}
        watchers = [
            Watcher(http, dialect, f"nurse-{n}")
            for n, dialect in enumerate(("jsonrpc", "trpc", "jsonrpc", "sse"))
        ]
        for watcher in watchers:
            await watcher.follow(nginx)
        # Three devices, each on its own socket through nginx: round robin puts them on
        # different nodes, so the alerts are committed through several nodes at once.
        devices = [await Device.connect(http, nginx) for _ in range(3)]

        async def raise_alerts(n: int, device: Device) -> None:
            for k in range(ALERTS_PER_DEVICE):
                await device.create(f"device {n} call {k}")

        await asyncio.gather(*(raise_alerts(n, d) for n, d in enumerate(devices)))
        for device in devices:
            await device.close()
        expected = await logged(postgres_url)
        assert len(expected) == 3 * ALERTS_PER_DEVICE
        for watcher in watchers:
            await received(watcher, len(expected))
        for watcher in watchers:
            assert problems(watcher, expected) == ""
            await watcher.close()


class Anonymous:
    """WebSockets opened through nginx without a token, each from a chosen loopback address;
    every one opened is held (referenced) until `close`, so it keeps its place in the node's
    count."""

    def __init__(self, nginx: Nginx) -> None:
        self.nginx = nginx
        self.sessions: list[aiohttp.ClientSession] = []
        self.sockets: list[aiohttp.ClientWebSocketResponse] = []

    async def open(self, source: str, forwarded_for: str | None = None) -> int:
        """101, or the status the upgrade was refused with."""
        http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(source, 0)))
        self.sessions.append(http)
        headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
        try:
            self.sockets.append(await http.ws_connect(self.nginx.ws_url, headers=headers))
        except aiohttp.WSServerHandshakeError as exc:
            return exc.status
        return 101

    async def close(self) -> None:
        for ws in self.sockets:
            await ws.close()
        for http in self.sessions:
            await http.close()


@pytest.mark.slow
async def test_nodes_count_clients_under_the_address_nginx_forwards(
    tmp_path: Path, postgres_url: str
) -> None:
    async with behind_nginx(tmp_path, postgres_url) as (_, nginx):
        clients = Anonymous(nginx)
        try:
            # Four clients at four addresses: each is its own address on whichever node it
            # reaches, so all are let in (were they counted under nginx's address, two of the
            # four would meet on one node and the second be refused).
            for n in range(2, 6):
                status = await clients.open(f"127.0.0.{n}")
                assert status == 101, f"127.0.0.{n} was refused ({status})"
            # Four from 127.0.0.1, each claiming another address: nginx replaces the header,
            # so the nodes count all four as 127.0.0.1 and one node gets two of them.
            statuses = []
            for n in range(4):
                statuses.append(await clients.open("127.0.0.1", f"203.0.113.{n}"))
            assert 503 in statuses, statuses
            assert statuses.count(101) <= 3, statuses
        finally:
            await clients.close()
