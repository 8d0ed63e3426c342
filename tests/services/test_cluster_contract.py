"""The cluster state contract (rpc.cluster), run on both implementations: nodes sharing one
in-memory hub, and nodes sharing one Redis (under a key prefix of the test's own). Each
scenario runs two nodes; what one does, the other must see."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from pydantic import ValidationError

from rpc.cluster import ClusterMessage, ClusterState, ConnectionEntry
from rpc.cluster_memory import InMemoryClusterState, MemoryHub
from rpc.connections import ConnectionRegistry
from rpc.context import Principal
from services.cluster_redis import RedisClusterState
from tests.redis_support import poll, shared_cluster

IMPLEMENTATIONS = ("memory", "redis")
WAIT_S = 5.0

MakeNode = Callable[[str], Awaitable[ClusterState]]


class Ping(ClusterMessage):
    kind = "test.ping"
    n: int


class Other(ClusterMessage):
    kind = "test.other"
    text: str


def entry(sub: str, role: str = "nurse", *hospitals: str) -> ConnectionEntry:
    return ConnectionEntry(sub, role, frozenset(hospitals or ("h1",)))


@pytest.fixture(params=IMPLEMENTATIONS)
async def make_node(request: pytest.FixtureRequest) -> AsyncIterator[MakeNode]:
    made: list[ClusterState] = []
    if request.param == "memory":
        hub = MemoryHub()

        async def memory(node_id: str) -> ClusterState:
            node = InMemoryClusterState(node_id, hub)
            await node.start()
            made.append(node)
            return node

        yield memory
        for node in made:
            await node.close()
        return
    async with shared_cluster() as (url, prefix):

        async def redis(node_id: str) -> ClusterState:
            node = RedisClusterState(url, node_id, prefix, ttl_s=1.5, check_s=0.3)
            await node.start()
            made.append(node)
            return node

        yield redis
        for node in made:
            await node.close()


async def until(condition: Callable[[], bool], what: str) -> None:
    async def check() -> bool:
        return condition()

    await poll(check, what, WAIT_S)


async def sees(node: ClusterState, check: Callable[[ClusterState], bool], what: str) -> None:
    await until(lambda: check(node), f"{what} on {node.node_id}")


async def test_every_node_counts_the_connections_of_all(make_node: MakeNode) -> None:
    a, b = await make_node("node-a"), await make_node("node-b")
    a.connection_opened("c1", entry("nurse-1", "nurse", "h1", "h2"))
    b.connection_opened("c1", entry("nurse-1", "nurse", "h1"))  # same id, another node
    b.connection_opened("c2", entry("monitor-1", "service", "h1"))  # a device, not staff
    b.connection_opened("c3", entry("doc-1", "physician", "h2"))
    for node in (a, b):
        await sees(node, lambda n: n.connections_of("nurse-1") == 2, "nurse-1 on both")
        await sees(node, lambda n: n.online_subjects("h2") == 2, "h2's staff")
        assert node.online_subjects("h1") == 1  # one person, twice; the device is no staff
        assert node.connections_of("monitor-1") == 1
        assert node.node_connections() == {"node-a": 1, "node-b": 3}
    b.connection_closed("c1")
    b.connection_closed("c3")
    for node in (a, b):
        await sees(node, lambda n: n.connections_of("nurse-1") == 1, "b's tab closed")
        await sees(node, lambda n: n.online_subjects("h2") == 1, "doc-1 gone")
        assert node.online_subjects("h1") == 1  # still there through node a


async def test_listeners_hear_changes_made_on_other_nodes(make_node: MakeNode) -> None:
    a, b = await make_node("node-a"), await make_node("node-b")
    heard: list[frozenset[str]] = []
    a.on_presence(heard.append)
    b.connection_opened("c1", entry("nurse-1", "nurse", "h7"))
    await until(lambda: frozenset({"h7"}) in heard, "a hears b's connection")
    heard.clear()
    b.connection_closed("c1")
    await until(lambda: frozenset({"h7"}) in heard, "a hears it close")
    assert a.online_subjects("h7") == 0


async def test_connection_listeners_hear_each_connection_with_its_name(
    make_node: MakeNode,
) -> None:
    """Presence keeps users from these: every node hears (node, connection, entry, +1/-1)."""
    a, b = await make_node("node-a"), await make_node("node-b")
    heard: list[tuple[str, str, ConnectionEntry, int]] = []
    a.on_connection(lambda node, conn, seen, step: heard.append((node, conn, seen, step)))
    named = ConnectionEntry("nurse-1", "nurse", frozenset({"h1"}), "Ana Silva")
    b.connection_opened("c1", named)
    await until(lambda: ("node-b", "c1", named, 1) in heard, "a hears b's connection")
    assert ("node-b", "c1", named) in a.connection_entries()
    b.connection_closed("c1")
    await until(lambda: ("node-b", "c1", named, -1) in heard, "a hears it close")
    assert a.connection_entries() == []


async def test_a_node_that_leaves_takes_its_connections_along(make_node: MakeNode) -> None:
    a, b = await make_node("node-a"), await make_node("node-b")
    b.connection_opened("c1", entry("nurse-1"))
    a.connection_opened("c1", entry("nurse-2"))
    await until(lambda: a.online_subjects("h1") == 2, "a sees b's nurse")
    await b.close()
    await until(lambda: a.online_subjects("h1") == 1, "b's nurse gone with b")
    assert a.connections_of("nurse-1") == 0
    assert a.node_connections() == {"node-a": 1}


async def test_a_node_joining_late_sees_who_is_already_there(make_node: MakeNode) -> None:
    a = await make_node("node-a")
    a.connection_opened("c1", entry("nurse-1"))
    a.connection_opened("c2", entry("nurse-2"))
    b = await make_node("node-b")
    await until(lambda: b.online_subjects("h1") == 2, "b reads a's connections")


async def test_the_registry_counts_through_the_cluster(make_node: MakeNode) -> None:
    a, b = await make_node("node-a"), await make_node("node-b")
    on_a, on_b = ConnectionRegistry(a), ConnectionRegistry(b)
    nurse = Principal("nurse-1", "nurse", frozenset({"h1"}), time.time() + 60)
    on_a.add("s1", nurse)
    on_b.add("s1", nurse)
    on_b.update("s1", nurse)  # a refreshed token: the same connection
    await until(lambda: on_a.connections_of("nurse-1") == 2, "both sockets on a")
    await until(lambda: on_b.connections_of("nurse-1") == 2, "both sockets on b")
    assert (len(on_a), len(on_b)) == (1, 1)  # a node's own sockets, for MAX_CONNECTIONS
    assert on_a.online_subjects("h1") == 1
    on_a.remove("s1")
    on_a.remove("s1")  # twice is harmless
    await until(lambda: on_b.connections_of("nurse-1") == 1, "a's socket closed")


async def test_a_broadcast_runs_once_on_every_node(make_node: MakeNode) -> None:
    a, b = await make_node("node-a"), await make_node("node-b")
    got: dict[str, list[Any]] = {"a": [], "b": []}
    a.on_message(Ping, got["a"].append)
    b.on_message(Ping, got["b"].append)
    b.on_message(Other, got["b"].append)
    assert await a.publish(Ping(n=1)) is True
    assert got["a"] == [Ping(n=1)]  # the publisher's own handlers ran at once
    await b.publish(Other(text="hello"))
    await b.publish(Ping(n=2))
    await until(lambda: len(got["a"]) == 2 and len(got["b"]) == 3, "every message everywhere")
    assert got["a"] == [Ping(n=1), Ping(n=2)]
    # Once each; one publisher's messages in its order (nothing is promised across publishers).
    assert sorted(map(repr, got["b"])) == sorted(
        map(repr, [Ping(n=1), Other(text="hello"), Ping(n=2)])
    )
    assert got["b"].index(Other(text="hello")) < got["b"].index(Ping(n=2))


async def test_a_failing_handler_does_not_starve_the_others(make_node: MakeNode) -> None:
    a, b = await make_node("node-a"), await make_node("node-b")
    got: list[Ping] = []

    def broken(message: Ping) -> None:
        raise RuntimeError("handler bug")

    b.on_message(Ping, broken)
    b.on_message(Ping, got.append)
    unsubscribe = b.on_message(Ping, got.append)
    unsubscribe()
    await a.publish(Ping(n=3))
    await until(lambda: got == [Ping(n=3)], "the healthy handler ran once")


async def test_broadcasts_stay_small_and_well_formed(make_node: MakeNode) -> None:
    a = await make_node("node-a")
    with pytest.raises(ValueError, match="at most"):
        await a.publish(Other(text="x" * 70_000))
    with pytest.raises(ValidationError):
        Ping(n="not a number")  # type: ignore[arg-type]


async def test_shared_keys_are_leases(make_node: MakeNode) -> None:
    a, b = await make_node("node-a"), await make_node("node-b")
    assert await a.set_if_absent("lease:retention", "node-a", 30) is True
    assert await b.set_if_absent("lease:retention", "node-b", 30) is False
    assert await b.get("lease:retention") == "node-a"
    assert await b.refresh("lease:retention", "node-b", 30) is False  # not b's to extend
    assert await a.refresh("lease:retention", "node-a", 30) is True
    assert await b.delete("lease:retention", if_value="node-b") is False
    assert await b.get("lease:retention") == "node-a"
    assert await a.delete("lease:retention", if_value="node-a") is True
    assert await b.set_if_absent("lease:retention", "node-b", 30) is True
    assert await a.delete("lease:retention") is True
    assert await a.get("lease:retention") is None
    assert await a.delete("lease:retention") is False


async def test_shared_keys_expire(make_node: MakeNode) -> None:
    a, b = await make_node("node-a"), await make_node("node-b")
    assert await a.set_if_absent("idem:k1", "alert-1", 0.2) is True
    assert await b.get("idem:k1") == "alert-1"

    async def gone() -> bool:
        return await b.get("idem:k1") is None

    await poll(gone, "the key's TTL", WAIT_S)
    assert await b.set_if_absent("idem:k1", "alert-2", 30) is True
    assert await a.refresh("idem:k1", "alert-1", 30) is False


async def test_health_names_the_node(make_node: MakeNode) -> None:
    a = await make_node("node-a")
    health = await a.health()
    assert health["node"] == "node-a"
    assert health.get("bus", "ok") == "ok"


def test_decoded_entries_share_their_hospital_sets_and_roles() -> None:
    first = ConnectionEntry.from_json({"s": "u1", "r": "nurse", "h": ["h2", "h1"]})
    second = ConnectionEntry.from_json({"s": "u2", "r": "nurse", "h": ["h1", "h2"]})
    assert first is not None
    assert second is not None
    assert first.hospitals == frozenset({"h1", "h2"})
    assert first.hospitals is second.hospitals
    assert first.role is second.role
