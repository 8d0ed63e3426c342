"""Each hospital's events in order, once, whichever way they reach this node.

In a cluster an event reaches a node along several paths: its own commits (the store's
`on_commit`), the database's notification of every node's commits (services/bus_postgres.py),
and the periodic high-water check against the log. Paths overtake one another, repeat one
another and lose things (a notification while the listening connection was down). The
Sequencer sits between them and AlertSubscriptionService.publish and decides by position,
with `newest` the last position published to the hospital's topic on this node:

- seq <= newest: already published (this node's commits come back as notifications: whichever
  arrives first wins), so dropped;
- seq == newest + 1: published at once, from what came, without a read;
- seq > newest + 1: a gap. The missing events are read from the log (`events_after`) and
  published in order first; events that arrive meanwhile wait behind them.

A topic whose positions are still being read waits the same way until they are known. A
hospital with no topic here (no subscriber on this node) has no stream to keep in order: its
events go straight to the service's listeners (metrics), which take each position at most once.

This relies on positions being dense per hospital (1, 2, 3, ...: the PostgreSQL store), so
that seq > newest + 1 means something is missing. The log is the source of truth: a gap is
filled from it, never delivered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from services.store import StoredEvent
from services.subscriptions import AlertSubscriptionService, Topic

log = logging.getLogger("alertwire.bus")

REPAIR_PAGE = 500
RETRY_S = 0.5  # a failed read of the log is tried again this much later (the database is away)
# Events held per hospital while its gap is read; past this, they are read from the log too.
MAX_HELD = 10_000


class EventLog(Protocol):
    """What the Sequencer reads from the source of truth."""

    async def events_after(
        self, hospital_id: str, after_seq: int, limit: int, alert_id: str | None = None
    ) -> list[StoredEvent]: ...

    async def newest_positions(self, hospital_ids: Sequence[str]) -> dict[str, int]:
        """Each hospital's newest committed position (hospitals with none are left out)."""


@dataclass
class _Gap:
    """A hospital whose next events cannot be published yet."""

    upto: int = 0  # the highest position known to exist
    held: dict[int, StoredEvent] = field(default_factory=dict)


class Sequencer:
    def __init__(self, subscriptions: AlertSubscriptionService, source: EventLog) -> None:
        self._subs = subscriptions
        self._log = source
        self._gaps: dict[str, _Gap] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.repaired = 0  # events read from the log to fill a gap

    def offer(self, events: Sequence[StoredEvent]) -> None:
        """Committed events, from any path, in any order, possibly again."""
        for event in events:
            hospital_id = event.hospital_id
            gap = self._gaps.get(hospital_id)
            if gap is None:
                if not self._subs.has_topic(hospital_id):
                    self._subs.publish((event,))  # the listeners only; they drop repeats
                    continue
                topic = self._subs.loaded(hospital_id)
                if topic is not None and event.seq <= topic.newest + 1:
                    self._subs.publish((event,))  # the next one, or a repeat it drops
                    continue
                gap = self._open(hospital_id)
            gap.upto = max(gap.upto, event.seq)
            if len(gap.held) < MAX_HELD:
                gap.held[event.seq] = event

    def announce(self, hospital_id: str, seq: int) -> None:
        """The log holds the hospital's events up to `seq` (a notification too large to carry
        its event, or the high-water check)."""
        gap = self._gaps.get(hospital_id)
        if gap is None:
            if not self._subs.has_topic(hospital_id):
                self._spawn(self._tell_listeners(hospital_id, seq))
                return
            topic = self._subs.loaded(hospital_id)
            if topic is not None and seq <= topic.newest:
                return
            gap = self._open(hospital_id)
        gap.upto = max(gap.upto, seq)

    async def catch_up(self) -> None:
        """The high-water check: whatever the log has past each loaded topic is fetched (what
        a lost or late notification did not bring)."""
        hospitals = self._subs.hospitals()
        if hospitals:
            for hospital_id, newest in (await self._log.newest_positions(hospitals)).items():
                self.announce(hospital_id, newest)

    @property
    def pending(self) -> int:
        """Hospitals with a gap being filled."""
        return len(self._gaps)

    async def stop(self) -> None:
        for task in tuple(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # --- filling gaps ---------------------------------------------------------------------

    def _open(self, hospital_id: str) -> _Gap:
        gap = self._gaps[hospital_id] = _Gap()
        self._spawn(self._fill(hospital_id, gap))
        return gap

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _fill(self, hospital_id: str, gap: _Gap) -> None:
        try:
            topic = await self._subs.settled(hospital_id)
            if topic is None:  # its load failed: no stream here, the listeners still hear
                self._subs.publish([gap.held[s] for s in sorted(gap.held)])
                return
            failing = False
            while not self._release(topic, gap):
                try:
                    events = await self._read(topic, gap)
                except Exception as exc:
                    if not failing:
                        log.warning("reading missed events failed (%s)", type(exc).__name__)
                    failing = True
                    await asyncio.sleep(RETRY_S)
                    continue
                failing = False
                if not events:  # the log has nothing more: it decides, nothing to wait for
                    self._subs.publish([gap.held.pop(s) for s in sorted(gap.held)])
                    return
                self.repaired += len(events)
                self._subs.publish(events)
        finally:
            if self._gaps.get(hospital_id) is gap:
                del self._gaps[hospital_id]

    def _release(self, topic: Topic, gap: _Gap) -> bool:
        """Publish what the topic can take now; True when the gap is closed."""
        held = gap.held
        stale = sorted(s for s in held if s <= topic.newest)
        if stale:  # the topic has them; the listeners may not (it loaded after they came)
            self._subs.publish([held.pop(s) for s in stale])
        while (event := held.pop(topic.newest + 1, None)) is not None:
            self._subs.publish((event,))
        return topic.newest >= gap.upto

    async def _read(self, topic: Topic, gap: _Gap) -> list[StoredEvent]:
        limit = min(REPAIR_PAGE, gap.upto - topic.newest)
        return await self._log.events_after(topic.hospital_id, topic.newest, limit)

    async def _tell_listeners(self, hospital_id: str, seq: int) -> None:
        """An event announced without itself, for a hospital with no topic here."""
        with contextlib.suppress(Exception):  # the listeners keep no stream: a miss is mild
            self._subs.publish(await self._log.events_after(hospital_id, seq - 1, 1))
