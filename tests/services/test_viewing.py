"""Who looks at an alert: looks come and go by themselves (quiet client, typing lapsing, the
connection closing, the user going away), each user once whatever their devices, and a look
said on one node is seen on another."""

from __future__ import annotations

from rpc.cluster_memory import MemoryHub
from services.viewing import RENEW_AFTER_S, TYPING_TTL_S, VIEWING_TTL_S, ViewingMessage
from tests.services.conftest import FakeClock
from tests.services.test_presence import AWAY, Node, hub, make_node, person

__all__ = ["hub"]  # the fixture, shared


async def look(node: Node, conn: str, sub: str, typing: bool = False, on: bool = True) -> None:
    await node.presence.viewing.look(conn, sub, sub.upper(), "nurse", "al_1", typing, on)


def viewers(node: Node) -> list[tuple[str, bool]]:
    return [(v.sub, v.typing) for v in node.presence.viewing.viewers("al_1").viewers]


async def test_viewers_are_sent_at_once_and_on_every_change(
    hub: MemoryHub, clock: FakeClock
) -> None:
    node = make_node(hub, "a", clock)
    phone = node.connect(person("nurse-1"))
    tablet = node.connect(person("nurse-1"))
    other = node.connect(person("nurse-2"))
    stream = node.presence.viewing.stream("al_1")
    first = await anext(stream)
    assert (first.type, first.alert_id, first.viewers) == ("alert.viewers", "al_1", [])
    await look(node, phone, "nurse-1")
    await look(node, tablet, "nurse-1", typing=True)
    await look(node, other, "nurse-2")
    await look(node, other, "nurse-2")  # a repeat changes nothing: nothing is sent
    sent = [await anext(stream) for _ in range(node.presence.viewing.queued("al_1"))]
    assert [[(v.sub, v.typing) for v in s.viewers] for s in sent] == [
        [("nurse-1", False)],
        [("nurse-1", True)],
        [("nurse-1", True), ("nurse-2", False)],
    ]
    assert sent[0].viewers[0].name == "NURSE-1"
    clock.advance(TYPING_TTL_S)
    node.presence.tick()
    assert viewers(node) == [("nurse-1", False), ("nurse-2", False)]
    node.close(tablet)  # nurse-1 still looks from the phone
    assert viewers(node) == [("nurse-1", False), ("nurse-2", False)]
    node.close(phone)
    assert viewers(node) == [("nurse-2", False)]
    await look(node, other, "nurse-2", on=False)
    assert viewers(node) == []
    assert node.presence.viewing.queued("al_1") == 3  # typing lapsed, phone closed, stopped
    await stream.aclose()
    await node.presence.stop()


async def test_a_quiet_client_stops_viewing_by_itself(hub: MemoryHub, clock: FakeClock) -> None:
    node = make_node(hub, "a", clock)
    conn = node.connect(person("nurse-1"))
    await look(node, conn, "nurse-1")
    clock.advance(VIEWING_TTL_S - 1)
    node.presence.tick()
    await look(node, conn, "nurse-1")  # renewed
    clock.advance(VIEWING_TTL_S - 1)
    node.presence.tick()
    assert viewers(node) == [("nurse-1", False)]
    clock.advance(1)
    node.presence.tick()
    assert viewers(node) == []
    assert node.presence.viewing.looked_at() == 0
    await node.presence.stop()


async def test_going_away_ends_ones_looks(hub: MemoryHub, clock: FakeClock) -> None:
    node = make_node(hub, "a", clock)
    conn = node.connect(person("nurse-1"))
    await look(node, conn, "nurse-1")
    await node.presence.set("nurse-1", "away", None)
    assert viewers(node) == []  # stepped away: no longer looking
    await node.presence.set("nurse-1", "online", None)
    await look(node, conn, "nurse-1")
    assert viewers(node) == [("nurse-1", False)]
    clock.advance(AWAY)
    node.presence.tick()
    await node.settle()
    assert viewers(node) == []
    await node.presence.stop()


async def test_a_look_on_one_node_is_seen_on_another(hub: MemoryHub, clock: FakeClock) -> None:
    a, b = make_node(hub, "a", clock), make_node(hub, "b", clock)
    conn = a.connect(person("nurse-1"))
    stream = b.presence.viewing.stream("al_1")
    assert (await anext(stream)).viewers == []
    await look(a, conn, "nurse-1", typing=True)
    assert [(v.sub, v.typing) for v in (await anext(stream)).viewers] == [("nurse-1", True)]
    a.close(conn)  # b sees the connection close in the cluster's view
    assert (await anext(stream)).viewers == []
    await stream.aclose()
    await a.presence.stop()
    await b.presence.stop()


async def test_keystrokes_do_not_each_cost_a_broadcast(hub: MemoryHub, clock: FakeClock) -> None:
    node = make_node(hub, "a", clock)
    conn = node.connect(person("nurse-1"))
    heard: list[bool] = []
    node.cluster.on_message(ViewingMessage, lambda m: heard.append(m.typing))
    for _ in range(20):
        await look(node, conn, "nurse-1", typing=True)
        clock.advance(0.05)
    assert heard == [True]
    clock.advance(RENEW_AFTER_S)
    await look(node, conn, "nurse-1", typing=True)  # renewed before it lapses
    await look(node, conn, "nurse-1")  # stopped typing: said at once
    assert heard == [True, True, False]
    clock.advance(TYPING_TTL_S)
    node.presence.tick()
    assert viewers(node) == [("nurse-1", False)]
    await node.presence.stop()
