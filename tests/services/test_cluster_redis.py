"""The Redis cluster state when things go wrong: a node killed without a goodbye, a missed
delta, Redis restarted and flushed under running nodes (on a redis-server of the test's own),
and the key prefix keeping clusters apart."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import orjson
import pytest
from redis.asyncio import Redis

from rpc.cluster import ClusterMessage, ClusterUnavailable, ConnectionEntry
from services.cluster_redis import RedisClusterState
from tests.redis_support import OwnRedis, poll, shared_cluster

WAIT_S = 10.0
TTL_S, CHECK_S = 1.5, 0.3


class Ping(ClusterMessage):
    kind = "test.ping"
    n: int


def nurse(sub: str, *hospitals: str) -> ConnectionEntry:
    return ConnectionEntry(sub, "nurse", frozenset(hospitals or ("h1",)))


async def until(condition: Callable[[], bool], what: str, timeout_s: float = WAIT_S) -> None:
    async def check() -> bool:
        return condition()

    await poll(check, what, timeout_s)


async def bus(node: RedisClusterState) -> object:
    return (await node.health())["bus"]


@pytest.fixture
async def nodes() -> AsyncIterator[Callable[..., RedisClusterState]]:
    """Nodes on the shared Redis, in a cluster of the test's own; closed afterwards."""
    made: list[RedisClusterState] = []
    async with shared_cluster() as (url, prefix):

        def make(node_id: str, cluster: str = prefix) -> RedisClusterState:
            node = RedisClusterState(url, node_id, cluster, ttl_s=TTL_S, check_s=CHECK_S)
            made.append(node)
            return node

        yield make
        for node in made:
            await node.close()


async def test_a_killed_nodes_connections_expire(
    nodes: Callable[..., RedisClusterState],
) -> None:
    a, b = nodes("node-a"), nodes("node-b")
    await a.start()
    await b.start()
    a.connection_opened("c1", nurse("nurse-1"))
    await until(lambda: b.online_subjects("h1") == 1, "b sees a's nurse")
    await a.close(leave=False)  # no goodbye: as SIGKILL leaves it
    assert b.online_subjects("h1") == 1  # nothing told b yet
    await until(lambda: b.online_subjects("h1") == 0, "a's keys expire", TTL_S + 3 * CHECK_S + 2)
    assert b.node_connections() == {}


async def test_a_missed_delta_is_repaired_from_the_hash(
    nodes: Callable[..., RedisClusterState],
) -> None:
    a, b = nodes("node-a"), nodes("node-b")
    await a.start()
    await b.start()
    a.connection_opened("c1", nurse("nurse-1"))
    await until(lambda: b.online_subjects("h1") == 1, "b sees a's nurse")
    # A change whose pub/sub notice never came (pub/sub is at-most-once): only the hash
    # and the version say it happened.
    keys = a.keys
    async with a.redis.pipeline(transaction=True) as pipe:
        pipe.hset(keys.conns("node-a"), "c2", orjson.dumps(nurse("nurse-2").to_json()).decode())
        pipe.set(keys.version("node-a"), f"{a.replica.epoch}:999", px=60_000)
        await pipe.execute()
    await until(lambda: b.online_subjects("h1") == 2, "b reads a's hash again")


async def test_clusters_with_other_prefixes_do_not_see_each_other(
    nodes: Callable[..., RedisClusterState],
) -> None:
    a = nodes("node-a")
    # Under the test's prefix, so that its keys are removed with the test's.
    stranger = nodes("node-x", cluster=f"{a.keys.cluster}:other")
    await a.start()
    await stranger.start()
    heard: list[ClusterMessage] = []
    a.on_message(Ping, heard.append)
    stranger.connection_opened("c1", nurse("nurse-1"))
    await stranger.publish(Ping(n=1))
    await stranger.set_if_absent("k", "x", 30)
    a.connection_opened("c1", nurse("nurse-2"))
    await a.publish(Ping(n=2))  # a's own message comes after the stranger's, if that came
    await until(lambda: heard == [Ping(n=2)], "a's own broadcast")
    assert a.online_subjects("h1") == 1
    assert await a.get("k") is None


@pytest.fixture
async def own_redis(tmp_path: Path) -> AsyncIterator[OwnRedis]:
    server = OwnRedis(tmp_path)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def test_redis_restarted_then_flushed_under_running_nodes(own_redis: OwnRedis) -> None:
    a = RedisClusterState(own_redis.url, "node-a", "restart", ttl_s=TTL_S, check_s=CHECK_S)
    b = RedisClusterState(own_redis.url, "node-b", "restart", ttl_s=TTL_S, check_s=CHECK_S)
    await a.start()
    await b.start()
    try:
        a.connection_opened("c1", nurse("nurse-1"))
        b.connection_opened("c1", nurse("nurse-2"))
        await until(lambda: a.online_subjects("h1") == b.online_subjects("h1") == 2, "both")
        assert [await bus(a), await bus(b)] == ["ok", "ok"]

        await own_redis.stop()
        await poll(lambda: _all_degraded(a, b), "bus degraded on both", WAIT_S)
        a.connection_opened("c2", nurse("nurse-3"))  # served locally meanwhile
        assert a.online_subjects("h1") == 3  # its own, and b's last known
        assert await a.publish(Ping(n=1)) is False
        with pytest.raises(ClusterUnavailable):
            await a.set_if_absent("lease", "a", 10)

        await own_redis.start()  # an empty Redis: everything must be written again
        await poll(lambda: _all_ok(a, b), "bus ok again on both", WAIT_S)
        await until(lambda: b.online_subjects("h1") == 3, "b hears of nurse-3")
        assert await a.set_if_absent("lease", "a", 10) is True

        await own_redis.flush()
        b.connection_opened("c2", nurse("nurse-4"))
        await until(lambda: a.online_subjects("h1") == 4, "a hears of nurse-4")
        await poll(lambda: _stored(own_redis, a, b, {"node-a": 2, "node-b": 2}), "rebuilt", WAIT_S)
        assert a.online_subjects("h1") == b.online_subjects("h1") == 4
    finally:
        await a.close()
        await b.close()


async def _all_degraded(*nodes: RedisClusterState) -> bool:
    return all([await bus(node) == "degraded" for node in nodes])


async def _all_ok(*nodes: RedisClusterState) -> bool:
    return all([await bus(node) == "ok" for node in nodes])


async def _stored(
    server: OwnRedis, a: RedisClusterState, b: RedisClusterState, want: dict[str, int]
) -> bool:
    """Each node's hash in Redis holds its connections again, and its version is back."""
    client = Redis.from_url(server.url, socket_connect_timeout=2.0, socket_timeout=5.0)
    try:
        for node, count in want.items():
            if await client.hlen(a.keys.conns(node)) != count:
                return False
            if await client.get(a.keys.version(node)) is None:
                return False
        return a.node_connections() == b.node_connections() == want
    finally:
        await client.aclose()
