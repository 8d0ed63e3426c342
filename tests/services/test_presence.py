"""Presence from the cluster's connection view, with an injected clock: devices, away after the
inactivity period, no flap on a reconnect within the grace period, offline after it, hospitals
kept apart, service accounts left out, and two nodes (one memory hub) agreeing."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest

from rpc.cluster_memory import InMemoryClusterState, MemoryHub
from rpc.connections import ConnectionRegistry
from rpc.context import Principal
from schemas.presence import PresenceEvent
from services.presence import GRACE_S, PresenceService
from tests.polling import until
from tests.services.conftest import T0, FakeClock, parse_iso

AWAY = 300.0
_conn_ids = itertools.count(1)


def person(
    sub: str, role: str = "nurse", hospitals: tuple[str, ...] = ("h1",), name: str | None = None
) -> Principal:
    return Principal(sub, role, frozenset(hospitals), T0 + 86_400, name)


@dataclass
class Node:
    cluster: InMemoryClusterState
    registry: ConnectionRegistry
    presence: PresenceService

    def connect(self, principal: Principal) -> str:
        conn_id = f"c{next(_conn_ids)}"
        self.registry.add(conn_id, principal)
        return conn_id

    def close(self, conn_id: str) -> None:
        self.registry.remove(conn_id)

    async def settle(self) -> None:
        await until(lambda: self.presence.pending == 0, "presence broadcasts to finish", 5)


@pytest.fixture
def hub() -> MemoryHub:
    return MemoryHub()


def make_node(hub: MemoryHub, name: str, clock: FakeClock) -> Node:
    cluster = InMemoryClusterState(name, hub)
    return Node(cluster, ConnectionRegistry(cluster), PresenceService(cluster, clock, AWAY))


@pytest.fixture
async def node(hub: MemoryHub, clock: FakeClock) -> AsyncIterator[Node]:
    made = make_node(hub, "a", clock)
    yield made
    await made.presence.stop()


class Watch:
    """A presence subscription read by hand: `take()` the events pushed so far."""

    def __init__(self, presence: PresenceService, hospital: str) -> None:
        self.presence = presence
        self.hospital = hospital
        self.stream = presence.stream(hospital)

    async def snapshot(self) -> dict[str, Any]:
        event = await anext(self.stream)
        assert event.type == "presence.snapshot"
        return {m.sub: m for m in event.members}

    async def take(self) -> list[PresenceEvent]:
        got = []
        while self.presence.queued(self.hospital):
            got.append(await anext(self.stream))
        return got


@asynccontextmanager
async def watching(presence: PresenceService, hospital: str = "h1") -> AsyncIterator[Watch]:
    watch = Watch(presence, hospital)
    try:
        yield watch
    finally:
        await watch.stream.aclose()


def kinds(events: list[PresenceEvent]) -> Iterator[tuple[str, str, Any]]:
    for event in events:
        if event.type == "presence.changed":
            yield event.type, event.member.sub, (event.member.status, event.member.devices)
        elif event.type == "presence.left":
            yield event.type, event.sub, None


async def test_devices_are_counted_and_each_change_is_told(node: Node) -> None:
    async with watching(node.presence) as watch:
        assert await watch.snapshot() == {}
        phone = node.connect(person("nurse-1", name="Ana Silva"))
        tablet = node.connect(person("nurse-1", name="Ana Silva"))
        node.close(phone)
        assert list(kinds(await watch.take())) == [
            ("presence.changed", "nurse-1", ("online", 1)),
            ("presence.changed", "nurse-1", ("online", 2)),
            ("presence.changed", "nurse-1", ("online", 1)),
        ]
        member = node.presence.member("nurse-1")
        assert member is not None
        assert (member.name, member.role, member.activity) == ("Ana Silva", "nurse", None)
        node.close(tablet)
        assert await watch.take() == []  # the grace period: still shown as it was


async def test_away_after_the_period_without_a_call_and_back_on_a_call(
    node: Node, clock: FakeClock
) -> None:
    principal = person("nurse-1")
    node.connect(principal)
    async with watching(node.presence) as watch:
        first = await watch.snapshot()
        assert first["nurse-1"].status == "online"
        clock.advance(AWAY - 1)
        node.presence.heard_call(principal)  # a call keeps them online
        clock.advance(AWAY - 1)
        node.presence.tick()
        await node.settle()
        assert await watch.take() == []
        clock.advance(1)
        node.presence.tick()
        await node.settle()
        [away] = await watch.take()
        assert away.type == "presence.changed"
        assert away.member.status == "away"
        assert parse_iso(away.member.since) == clock()
        node.presence.heard_call(principal)
        await node.settle()
        [back] = await watch.take()
        assert back.type == "presence.changed"
        assert back.member.status == "online"


async def test_a_reconnect_within_the_grace_period_is_no_change(
    node: Node, clock: FakeClock
) -> None:
    conn = node.connect(person("nurse-1"))
    async with watching(node.presence) as watch:
        await watch.snapshot()
        node.close(conn)
        clock.advance(GRACE_S - 0.5)
        node.presence.tick()
        node.connect(person("nurse-1"))
        clock.advance(GRACE_S)
        node.presence.tick()
        await node.settle()
        assert await watch.take() == []


async def test_offline_once_the_grace_period_has_passed(node: Node, clock: FakeClock) -> None:
    conn = node.connect(person("nurse-1", hospitals=("h1", "h2")))
    async with watching(node.presence) as watch:
        await watch.snapshot()
        node.close(conn)
        clock.advance(GRACE_S - 0.01)
        node.presence.tick()
        assert await watch.take() == []
        clock.advance(0.01)
        node.presence.tick()
        assert list(kinds(await watch.take())) == [("presence.left", "nurse-1", None)]
        assert node.presence.snapshot("h2").members == []


async def test_a_user_is_seen_only_in_hospitals_both_share(node: Node) -> None:
    node.connect(person("only-h1", hospitals=("h1",)))
    node.connect(person("only-h2", hospitals=("h2",)))
    node.connect(person("both", "physician", hospitals=("h1", "h2")))
    node.connect(person("device-1", "service", hospitals=("h1", "h2")))
    assert [m.sub for m in node.presence.snapshot("h1").members] == ["both", "only-h1"]
    assert [m.sub for m in node.presence.snapshot("h2").members] == ["both", "only-h2"]
    assert node.presence.snapshot("h3").members == []


async def test_a_refreshed_token_with_fewer_hospitals_leaves_those(node: Node) -> None:
    conn = node.connect(person("nurse-1", hospitals=("h1", "h2")))
    async with watching(node.presence, "h2") as watch:
        await watch.snapshot()
        node.registry.update(conn, person("nurse-1", hospitals=("h1",)))
        assert list(kinds(await watch.take())) == [("presence.left", "nurse-1", None)]
    assert [m.sub for m in node.presence.snapshot("h1").members] == ["nurse-1"]


async def test_a_set_status_and_activity_hold_until_offline(node: Node, clock: FakeClock) -> None:
    conn = node.connect(person("nurse-1"))
    assert await node.presence.set("nurse-1", "busy", "In theatre") == ("busy", "In theatre")
    clock.advance(AWAY)
    node.presence.tick()
    await node.settle()
    member = node.presence.member("nurse-1")
    assert member is not None
    assert (member.status, member.activity) == ("busy", "In theatre")  # busy beats away
    assert await node.presence.set("nurse-1", "online", None) == ("away", "In theatre")
    assert await node.presence.set("nurse-1", None, "") == ("away", None)
    await node.presence.set("nurse-1", "busy", "Rounds")
    node.close(conn)
    clock.advance(GRACE_S)
    node.presence.tick()
    await node.settle()
    node.connect(person("nurse-1"))
    await node.settle()
    member = node.presence.member("nurse-1")
    assert member is not None
    assert (member.status, member.activity) == ("online", None)  # a new session starts fresh


async def test_two_nodes_agree(hub: MemoryHub, clock: FakeClock) -> None:
    a, b = make_node(hub, "a", clock), make_node(hub, "b", clock)
    try:
        nurse = person("nurse-1", name="Ana")
        on_a = a.connect(nurse)
        on_b = b.connect(nurse)
        for node in (a, b):
            member = node.presence.member("nurse-1")
            assert member is not None
            assert (member.devices, member.status) == (2, "online")
        await a.presence.set("nurse-1", "busy", "Bed 12")
        for node in (a, b):
            member = node.presence.member("nurse-1")
            assert member is not None
            assert (member.status, member.activity) == ("busy", "Bed 12")
        await a.presence.set("nurse-1", "online", None)
        # idle on node a only: still online (their other device is in use)
        clock.advance(AWAY)
        b.presence.heard_call(nurse)
        a.presence.tick()
        b.presence.tick()
        await a.settle()
        await b.settle()
        assert [n.presence.member("nurse-1").status for n in (a, b)] == ["online", "online"]  # type: ignore[union-attr]
        clock.advance(AWAY)
        a.presence.tick()
        b.presence.tick()
        await a.settle()
        await b.settle()
        assert [n.presence.member("nurse-1").status for n in (a, b)] == ["away", "away"]  # type: ignore[union-attr]
        # the device on b closes: a sees it within the grace period, then the user is gone
        a.close(on_a)
        b.close(on_b)
        clock.advance(GRACE_S)
        a.presence.tick()
        b.presence.tick()
        assert a.presence.snapshot("h1").members == b.presence.snapshot("h1").members == []
    finally:
        await a.presence.stop()
        await b.presence.stop()


async def test_a_node_that_starts_later_learns_what_was_set(
    hub: MemoryHub, clock: FakeClock
) -> None:
    a = make_node(hub, "a", clock)
    a.connect(person("nurse-1"))
    await a.presence.set("nurse-1", "busy", "Handover")
    b = make_node(hub, "b", clock)
    try:
        await b.settle()
        member = b.presence.member("nurse-1")
        assert member is not None
        assert (member.status, member.activity, member.devices) == ("busy", "Handover", 1)
    finally:
        await a.presence.stop()
        await b.presence.stop()
