"""The Sequencer's ordering, de-duplication and gap filling (services/sequencer.py), against a
log in memory: no database. Whatever order and however often events are offered, each topic
publishes every position once and in order, and the listeners hear each position once."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from services.sequencer import Sequencer
from services.store import StoredEvent
from services.subscriptions import AlertSubscriptionService
from tests.polling import until


def event(seq: int, hospital: str = "h1") -> StoredEvent:
    return StoredEvent(seq, hospital, f"al-{seq}", f'{{"n":{seq}}}'.encode())


class MemoryLog:
    """The source of truth: committed events per hospital. `gate`, when set, holds every read
    until it opens; `failures` reads fail first (the database away)."""

    def __init__(self) -> None:
        self.events: dict[str, list[StoredEvent]] = {}
        self.reads: list[tuple[str, int, int]] = []
        self.gate: asyncio.Event | None = None
        self.failures = 0

    def commit(self, *seqs: int, hospital: str = "h1") -> list[StoredEvent]:
        made = [event(s, hospital) for s in seqs]
        self.events.setdefault(hospital, []).extend(made)
        return made

    async def events_after(
        self, hospital_id: str, after_seq: int, limit: int, alert_id: str | None = None
    ) -> list[StoredEvent]:
        self.reads.append((hospital_id, after_seq, limit))
        if self.gate is not None:
            await self.gate.wait()
        if self.failures:
            self.failures -= 1
            raise ConnectionError("the database is away")
        return [e for e in self.events.get(hospital_id, []) if e.seq > after_seq][:limit]

    async def newest_positions(self, hospital_ids: Sequence[str]) -> dict[str, int]:
        return {h: self.events[h][-1].seq for h in hospital_ids if self.events.get(h)}

    async def positions(self, hospital_id: str) -> tuple[int, int]:
        found = self.events.get(hospital_id)
        return (found[-1].seq if found else 0), 0


class Node:
    """A subscription service fed through a Sequencer, and what its listeners heard."""

    def __init__(self, log: MemoryLog) -> None:
        self.log = log
        self.subs = AlertSubscriptionService(log)  # type: ignore[arg-type]
        self.sequencer = Sequencer(self.subs, log)
        self.heard: list[tuple[str, int]] = []
        self.subs.on(lambda e: self.heard.append((e.hospital_id, e.seq)))

    def ring(self, hospital: str = "h1") -> list[int]:
        topic = self.subs.loaded(hospital)
        assert topic is not None
        return [e.seq for e in topic.ring]

    async def settled(self) -> None:
        await until(lambda: self.sequencer.pending == 0, "the sequencer to fill its gaps")


@pytest.fixture
def log() -> MemoryLog:
    return MemoryLog()


@pytest.fixture
async def node(log: MemoryLog) -> Node:
    made = Node(log)
    await made.subs.topic("h1")  # someone subscribed on this node
    return made


async def test_the_next_position_is_published_at_once_without_a_read(
    node: Node, log: MemoryLog
) -> None:
    for made in (log.commit(1), log.commit(2, 3)):
        node.sequencer.offer(made)
    assert node.ring() == [1, 2, 3]  # synchronously: no task, no read
    assert log.reads == []
    assert node.sequencer.pending == 0
    assert node.heard == [("h1", 1), ("h1", 2), ("h1", 3)]


async def test_an_event_offered_twice_is_published_once(node: Node, log: MemoryLog) -> None:
    mine = log.commit(1, 2)
    node.sequencer.offer(mine)  # this node's commit ...
    node.sequencer.offer(mine)  # ... and the database's notification of it
    node.sequencer.offer(mine[:1])
    assert node.ring() == [1, 2]
    assert node.heard == [("h1", 1), ("h1", 2)]
    assert log.reads == []


async def test_a_gap_is_read_from_the_log_before_what_follows_it(
    node: Node, log: MemoryLog
) -> None:
    log.commit(1, 2)  # committed elsewhere; their notifications never came
    node.sequencer.offer(log.commit(3))
    assert node.ring() == []  # 3 must not overtake 1 and 2
    await node.settled()
    assert node.ring() == [1, 2, 3]
    assert log.reads == [("h1", 0, 3)]
    assert node.heard == [("h1", 1), ("h1", 2), ("h1", 3)]
    assert node.sequencer.repaired == 3


async def test_events_that_come_during_a_read_wait_behind_it(node: Node, log: MemoryLog) -> None:
    log.gate = asyncio.Event()
    log.commit(1)
    node.sequencer.offer(log.commit(2))
    await until(lambda: bool(log.reads), "the gap's read to start")
    node.sequencer.offer(log.commit(3))  # the next one, but 1 and 2 are not out yet
    node.sequencer.offer(log.commit(4))
    assert node.ring() == []
    log.gate.set()
    await node.settled()
    assert node.ring() == [1, 2, 3, 4]
    assert len(log.reads) == 1  # 3 and 4 came from what was offered (or that one read)


async def test_a_late_event_after_its_successor_is_not_delivered_twice(
    node: Node, log: MemoryLog
) -> None:
    first, second = log.commit(1), log.commit(2)
    node.sequencer.offer(second)
    node.sequencer.offer(first)  # overtaken: it arrives while 2 waits
    await node.settled()
    node.sequencer.offer(first + second)  # and once more, late
    assert node.ring() == [1, 2]
    assert node.heard == [("h1", 1), ("h1", 2)]


async def test_an_announced_position_is_read(node: Node, log: MemoryLog) -> None:
    log.commit(1, 2)  # too large to carry: only "h1 has 2" came
    node.sequencer.announce("h1", 2)
    await node.settled()
    assert node.ring() == [1, 2]
    node.sequencer.announce("h1", 2)  # known already: nothing to read
    assert node.sequencer.pending == 0
    assert len(log.reads) == 1


async def test_the_high_water_check_fetches_what_no_notification_brought(
    node: Node, log: MemoryLog
) -> None:
    log.commit(1, 2, 3)
    log.commit(1, hospital="h2")  # no topic here: not checked
    await node.sequencer.catch_up()
    await node.settled()
    assert node.ring() == [1, 2, 3]
    await node.sequencer.catch_up()  # nothing new
    assert node.sequencer.pending == 0
    assert len(log.reads) == 1


async def test_a_failed_read_is_tried_again(node: Node, log: MemoryLog) -> None:
    log.failures = 1
    log.commit(1)
    node.sequencer.offer(log.commit(2))
    await until(lambda: len(log.reads) == 2, "the read to be tried again", timeout_s=5)
    await node.settled()
    assert node.ring() == [1, 2]


async def test_a_hospital_without_a_topic_goes_to_the_listeners_once(
    node: Node, log: MemoryLog
) -> None:
    made = log.commit(5, 6, hospital="h2")
    node.sequencer.offer(made)
    node.sequencer.offer(made)
    assert node.heard == [("h2", 5), ("h2", 6)]
    assert node.subs.loaded("h2") is None
    assert log.reads == []
    log.commit(7, hospital="h2")
    node.sequencer.announce("h2", 7)  # too large to carry: read for the listeners
    await until(lambda: ("h2", 7) in node.heard, "the listeners to hear the announced event")
    assert node.heard == [("h2", 5), ("h2", 6), ("h2", 7)]


async def test_events_wait_for_a_topic_that_is_loading(log: MemoryLog) -> None:
    log.commit(1, 2)
    node = Node(log)
    log.gate = asyncio.Event()  # holds the topic's positions read, too

    async def positions(hospital_id: str) -> tuple[int, int]:
        found = await MemoryLog.positions(log, hospital_id)  # read now, answered later
        assert log.gate is not None
        await log.gate.wait()
        return found

    log.positions = positions  # type: ignore[method-assign]
    loading = asyncio.create_task(node.subs.topic("h1"))
    await until(lambda: node.subs.has_topic("h1"), "the topic to start loading")
    node.sequencer.offer(log.commit(3))  # committed after the positions were read ...
    node.sequencer.offer(log.events["h1"][1:2])  # ... and 2, which they include
    log.gate.set()
    await loading
    await node.settled()
    assert node.ring() == [3]  # 2 came before the topic: it is in the log, not the ring
    assert node.heard == [("h1", 2), ("h1", 3)]
