"""A cluster of node processes (the real start script) on one PostgreSQL schema: cross-node
delivery (CONTRACT 7; services/bus_postgres.py). Every subscriber, on any node and in any
dialect, must receive exactly the hospital's log: every event once, in event-id order, through
a node killed mid-stream, a node that dies between its commit and its publish, killed
database connections and a database out of reach. Each wait polls a condition with a deadline.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp

from services import faults
from services.store import format_event_id
from tests.integration.cluster import (
    DIALECTS,
    Device,
    Watcher,
    cluster,
    health,
    logged,
    problems,
    start_node,
)
from tests.integration.server import ServerProcess
from tests.polling import until
from tests.postgres import TcpProxy, terminate_backends

ZEROS = format_event_id(0)


async def watchers_on(
    http: aiohttp.ClientSession, nodes: list[ServerProcess], per_node: int = 2
) -> list[tuple[Watcher, int]]:
    """Subscribers spread over the nodes, the dialects taking turns; (watcher, node index)."""
    made: list[tuple[Watcher, int]] = []
    for n in range(len(nodes) * per_node):
        watcher = Watcher(http, DIALECTS[n % len(DIALECTS)], f"nurse-{n}")
        await watcher.follow(nodes[n % len(nodes)])
        made.append((watcher, n % len(nodes)))
    return made


async def all_delivered(url: str, watchers: list[Watcher], timeout_s: float = 15.0) -> None:
    """Until every watcher has the whole log, then: exactly the log, once each, in order."""
    expected = await logged(url)

    def caught_up() -> bool:
        return all(len(w.events) >= len(expected) for w in watchers)

    await until(caught_up, f"{len(expected)} events on every subscriber", timeout_s)
    assert [problems(w, expected) for w in watchers] == [""] * len(watchers)


async def raise_alerts(device: Device, prefix: str, count: int, made: list[str]) -> None:
    for n in range(count):
        made.append(await device.create(f"{prefix} {n}"))


async def test_subscribers_on_every_node_see_every_event_once_in_order(
    tmp_path: Path, postgres_url: str
) -> None:
    async with cluster(tmp_path, postgres_url, 3) as nodes, aiohttp.ClientSession() as http:
        assert [(await health(http, n))["bus"] for n in nodes] == ["ok"] * 3
        watched = await watchers_on(http, nodes)
        devices = [await Device.connect(http, node) for node in nodes for _ in range(2)]
        made: list[str] = []
        # Two devices per node at once: commits of different nodes interleave and overtake
        # one another's notifications.
        await asyncio.gather(
            *(raise_alerts(d, f"from device {i}", 10, made) for i, d in enumerate(devices))
        )
        assert len(made) == 60
        await all_delivered(postgres_url, [w for w, _ in watched])
        assert sorted(made) == sorted(alert for _, alert in await logged(postgres_url))
        for device in devices:
            await device.close()
        for watcher, _ in watched:
            await watcher.close()


async def test_a_node_killed_mid_stream_loses_nothing_and_comes_back(
    tmp_path: Path, postgres_url: str
) -> None:
    async with cluster(tmp_path, postgres_url, 3) as nodes, aiohttp.ClientSession() as http:
        watched = await watchers_on(http, nodes)
        devices = [await Device.connect(http, node) for node in nodes]
        made: list[str] = []
        survivors = [raise_alerts(devices[i], f"from node {i}", 30, made) for i in (0, 1)]
        streams = asyncio.gather(*survivors)
        doomed = asyncio.create_task(raise_alerts(devices[2], "from node 2", 1000, made))
        await until(lambda: len(made) >= 20, "alerts through every node before the kill")
        nodes[2].proc.kill()  # SIGKILL: no goodbye to anyone
        await nodes[2].proc.wait()
        await asyncio.gather(doomed, return_exceptions=True)  # its call in flight is lost
        moved = [w for w, n in watched if n == 2]
        for index, watcher in enumerate(moved):
            await until(watcher.ended.is_set, "the dead node's subscribers to notice")
            await watcher.follow(nodes[index % 2])  # elsewhere, from the last event it got
        await streams
        await all_delivered(postgres_url, [w for w, _ in watched])
        logged_alerts = {alert for _, alert in await logged(postgres_url)}
        assert set(made) <= logged_alerts  # every createAlert that succeeded is in the log

        nodes[2] = await start_node(tmp_path, postgres_url, 2)
        fresh = Watcher(http, "sse", "nurse-late")
        await fresh.follow(nodes[2], ZEROS)  # CONTRACT 7: the whole retained log
        restarted = await Device.connect(http, nodes[2])
        made.append(await restarted.create("after the restart"))
        await all_delivered(postgres_url, [fresh, *(w for w, _ in watched)])
        for device in (*devices[:2], restarted):
            await device.close()
        for watcher in (fresh, *(w for w, _ in watched)):
            await watcher.close()


async def test_an_event_whose_node_died_between_commit_and_publish_reaches_the_others(
    tmp_path: Path, postgres_url: str
) -> None:
    marker = "die-after-this-commit"
    arm = {faults.EXIT_AFTER_COMMIT: marker}
    async with cluster(tmp_path, postgres_url, 2) as nodes, aiohttp.ClientSession() as http:
        nodes.append(await start_node(tmp_path, postgres_url, 2, **arm))
        watched = [w for w, n in await watchers_on(http, nodes[:2])]
        device = await Device.connect(http, nodes[2])
        first = await device.create("an ordinary alert")
        try:
            await device.create(f"the last words: {marker}")
        except ConnectionError:
            pass  # the node died before it could answer
        else:
            raise AssertionError("the node answered a call it was to die after committing")
        assert await asyncio.wait_for(nodes[2].proc.wait(), 10) == faults.EXIT_CODE
        log = await logged(postgres_url)
        assert log[0][1] == first
        assert len(log) == 2  # the commit it died after is in the log ...
        await all_delivered(postgres_url, watched)  # ... and every other node delivered it
        await device.close()
        for watcher in watched:
            await watcher.close()


async def test_killed_connections_and_an_unreachable_database_lose_nothing(
    tmp_path: Path, postgres_url: str
) -> None:
    proxy = TcpProxy(postgres_url)
    await proxy.start()
    async with cluster(tmp_path, postgres_url, 1) as nodes, aiohttp.ClientSession() as http:
        try:
            nodes.append(await start_node(tmp_path, proxy.url, 1))  # through the proxy
            watched = [w for w, _ in await watchers_on(http, nodes, per_node=3)]
            device = await Device.connect(http, nodes[0])
            made: list[str] = []
            await raise_alerts(device, "before", 5, made)
            await all_delivered(postgres_url, watched)

            # Every connection of both nodes, pools and LISTEN alike, killed by the server.
            assert await terminate_backends(postgres_url) >= 4
            await raise_alerts(device, "after the kill", 5, made)
            await all_delivered(postgres_url, watched)

            await proxy.cut()  # node 1 cannot reach the database at all

            async def node_1_is(want: dict[str, str]) -> bool:
                body = await health(http, nodes[1])
                return {k: body.get(k) for k in want} == want

            await until(lambda: node_1_is({"storage": "down", "bus": "degraded"}), "degraded")
            await raise_alerts(device, "while node 1 is cut off", 5, made)
            await proxy.restore()
            await until(lambda: node_1_is({"storage": "ok", "bus": "ok"}), "node 1 to recover")
            await all_delivered(postgres_url, watched)
            assert len(made) == 15
            await device.close()
            for watcher in watched:
                await watcher.close()
        finally:
            await proxy.cut()
