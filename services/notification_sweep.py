"""Notifications from the durable event log: every committed assignment or escalation notifies
its recipients exactly once, even when the node that committed it crashed (or its write
failed) between the alert's commit and the notification's.

The notification rules first run right after the commit, on the committing node
(`NotificationService.alert_committed`: the fast path, for latency). That path holds the
change only in memory, so this sweep reads the event log itself, the record of what was
committed, from a durable cursor (services/notification_cursor.py) and applies the same rules
to each `alert.updated` and `alert.escalated` event. Both paths write with the same dedupe key
per rule and occasion (`alert.assigned:<alert>:<version>`, `alert.escalated:<alert>:<version>`)
and the unique (recipient, key) index keeps one row: whichever comes second writes nothing, so
the two together, two nodes sweeping at once, or a sweep repeated after a crash never
duplicate. The cursor moves past events only once their rules are written, so a crash or a
failed write in between means handling them again, never skipping them.

What the rules need comes from the event: its type, `actorId` (the actor is not told of their
own act) and the alert after the change (assignee, escalation level, version). The assignment
rule also asks whether the assignee was someone else before; the alert before a change is the
alert of the previous event of the same alert in the log (every change commits an event), so
the sweep reads that one event (by the alert's index) rather than adding a field to the wire
event. Only an `alert.updated` naming an assignee other than its actor needs it. Retention never
prunes the events of an alert that is not resolved, so the previous event is there when it
matters; were it missing, the change counts as an assignment (as on the fast path with no
`before`). The escalation rule reads the hospital's charge nurses when it runs, so a sweep
after a crash tells those listed then.

In a cluster one node sweeps: the one holding the lease in the shared state (`set_if_absent`,
then `refresh`), given back on stop, lost LEASE_S after a node dies. Correctness does not rest
on it (the dedupe keys do); it saves the other nodes the reads. The sweep runs at start-up and
every TICK_S, a full page at a time until it has caught up; tests call `run_once`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import orjson

from rpc.cluster import ClusterState, ClusterUnavailable
from schemas.alerts import Alert
from services.notification_cursor import NotificationCursorStore
from services.notifications import NotificationService
from services.store import StoredEvent

log = logging.getLogger("alertwire.notifications")

LEASE_KEY = "notification-sweep-lease"
LEASE_S = 30.0
TICK_S = 1.0
PAGE = 200  # events per cursor read at a time


class NotificationSweep:
    def __init__(
        self,
        cursors: NotificationCursorStore,
        notifications: NotificationService,
        cluster: ClusterState | None,
    ) -> None:
        self.cursors = cursors
        self.notifications = notifications
        self.cluster = cluster
        self.written = 0  # notifications this node's sweep wrote (the fast path had lost them)
        self._leased = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run_forever(), name="notification-sweep")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self.cluster is not None and self._leased:
            with contextlib.suppress(ClusterUnavailable):
                await self.cluster.delete(LEASE_KEY, if_value=self.cluster.node_id)
        self._leased = False

    async def _run_forever(self) -> None:
        while True:
            try:
                await self.catch_up()
            except Exception as exc:  # storage or cluster down: the next tick tries again
                log.warning("notification sweep failed (%s); will retry", type(exc).__name__)
            await asyncio.sleep(TICK_S)

    async def catch_up(self) -> int:
        """Rounds until one finds nothing left (or cannot move on); returns events handled."""
        total = 0
        while True:
            handled, more = await self._round()
            total += handled
            if not more:
                return total

    async def run_once(self) -> int:
        """One round: at most PAGE events per cursor. Returns the events handled."""
        handled, _more = await self._round()
        return handled

    async def _round(self) -> tuple[int, bool]:
        """(events handled, whether a cursor moved and may have more after it)."""
        if not await self._lease():
            return 0, False
        handled = 0
        more = False
        for backlog in await self.cursors.backlog(PAGE):
            through = backlog.through
            for event in backlog.events:
                try:
                    await self._apply(event)
                except Exception as exc:
                    # Stop this cursor before the event: it is handled again next round.
                    log.warning(
                        "notification sweep: event %s not handled (%s); will retry",
                        event.id,
                        type(exc).__name__,
                    )
                    through = event.seq - 1
                    break
                handled += 1
            else:
                more = more or len(backlog.events) >= PAGE
            await self.cursors.advance(backlog.key, through)
        return handled, more

    async def _apply(self, event: StoredEvent) -> None:
        body = orjson.loads(event.payload)
        kind = str(body["type"])
        actor = str(body["actorId"])
        after = Alert.model_validate(body["alert"])
        before: Alert | None = None
        if kind == "alert.updated":
            if after.assigned_to is None or after.assigned_to == actor:
                return
            previous = await self.cursors.previous(event.hospital_id, event.alert_id, event.seq)
            if previous is not None:
                before = Alert.model_validate(orjson.loads(previous)["alert"])
        written = await self.notifications.apply_rules(kind, actor, before, after, True)
        if written:
            self.written += len(written)
            log.info("notification sweep wrote %d notification(s) the fast path lost", len(written))

    async def _lease(self) -> bool:
        if self.cluster is None:
            return True
        node = self.cluster.node_id
        try:
            held = await self.cluster.set_if_absent(LEASE_KEY, node, LEASE_S) or (
                await self.cluster.refresh(LEASE_KEY, node, LEASE_S)
            )
        except ClusterUnavailable:
            return False
        self._leased = held
        return held
