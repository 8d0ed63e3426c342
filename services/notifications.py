"""Notifications (CONTRACT 10): each user's durable inbox, its live stream to every device on
every node, and the domain rules that write to it.

Rules, each writing exactly one notification per recipient (a dedupe key per rule and
occasion makes a repeat write nothing; the actor of a change is not told of it):
- `alert.assigned`: the new assignee, when an alert's `assignedTo` changes to them;
- `alert.escalated`: the alert's assignee and the charge nurses of its hospital;
- `webhook.disabled`: the admins of the hospital (`notify_webhook_disabled`, called by the
  webhook delivery when it gives up on an endpoint);
- `broadcast`: every staff member of the hospital (`notifications.broadcast`, admins).
The alert rules run on the node that committed the change, right after the commit
(AlertService tells it): the fast path. A crash or a failed write there would lose the
notification, so the durable event log is swept too (services/notification_sweep.py, from a
cursor, on one node of a cluster): each committed assignment or escalation is handled again,
and the dedupe keys make the second pass write only what the first did not.
"The charge nurses of the hospital" come from the staff directory (notification_store.py):
users recorded as they call, so that those not connected now are notified too.

Live delivery: after a write or a mark-read, a `notifications.changed` broadcast wakes the
subscribers of those users on every node; each subscription then reads what is new for it from
the store (so what it sends is what is committed, in id order) and the unread count, sent only
when it changed. A subscription resumes from `lastEventId` by reading the ids after it; read
and count events carry the position with a unique suffix (`marker_id`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import weakref
from collections.abc import AsyncGenerator, Callable, Coroutine, Sequence
from typing import Any, ClassVar

from rpc.cluster import ClusterMessage, ClusterState, ConnectionEntry
from rpc.context import Principal
from rpc.stream import Tracked
from schemas.alerts import Alert
from schemas.notifications import (
    Notification,
    NotificationCount,
    NotificationEvent,
    NotificationNew,
    NotificationRead,
)
from services.lifecycle import iso
from services.notification_store import NewNotification, NotificationRecord, NotificationStore
from services.store import format_event_id, parse_event_id

log = logging.getLogger("alertwire.notifications")

BATCH = 200  # notifications a subscription reads from the store at a time
MAX_SUBS_PER_MESSAGE = 500  # beyond that a broadcast wakes every subscriber instead
MAX_IDS_PER_MESSAGE = 1000


class NotificationsChanged(ClusterMessage):
    kind: ClassVar[str] = "notifications.changed"
    subs: list[str] = []
    everyone: bool = False
    read_ids: list[int] = []  # of subs[0]


class _Inbox:
    """One subscription's wake-up flag and the read ids told to it since it last looked."""

    def __init__(self) -> None:
        self.wake = asyncio.Event()
        self.reads: list[int] = []


def marker_id(position: int) -> str:
    """The id of a read or count event: the stream's position (so that resuming from it
    continues after the notifications already sent) and a random part, so that it is unique
    (clients drop an event whose id they have seen) and sorts after the position's own id."""
    return f"{format_event_id(position)}.{secrets.token_hex(6)}"


def position_of(event_id: str) -> int | None:
    """The stream position an event id of `notifications.subscribe` names; None if none."""
    head, _, tail = event_id.partition(".")
    if tail and not (len(tail) == 12 and all(c in "0123456789abcdef" for c in tail)):
        return None
    return parse_event_id(head)


def wire(record: NotificationRecord) -> Notification:
    return Notification(
        id=format_event_id(record.id),
        kind=record.kind,  # type: ignore[arg-type]  # written from NotificationKind only
        title=record.title,
        message=record.message,
        hospital_id=record.hospital_id,
        alert_id=record.alert_id,
        severity=record.severity,  # type: ignore[arg-type]
        created_at=iso(record.created_ts),
        read_at=None if record.read_ts is None else iso(record.read_ts),
    )


class NotificationService:
    def __init__(
        self, store: NotificationStore, cluster: ClusterState, clock: Callable[[], float]
    ) -> None:
        self.store = store
        self.cluster = cluster
        self.clock = clock
        self._inboxes: dict[str, weakref.WeakSet[_Inbox]] = {}
        self._recorded: dict[str, tuple[str, str | None, frozenset[str]]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._off = [
            cluster.on_message(NotificationsChanged, self._heard),
            cluster.on_connection(self._connection),
        ]

    @property
    def pending(self) -> int:
        """Rule evaluations and directory writes started and not yet done."""
        return len(self._tasks)

    async def close(self) -> None:
        for off in self._off:
            off()
        for task in list(self._tasks):
            with contextlib.suppress(Exception):
                await task

    # --- the staff directory ------------------------------------------------------------------

    def heard_call(self, principal: Principal) -> None:
        """Record who works where as they call (HTTP callers have no connection)."""
        self._record(principal.sub, principal.role, principal.name, principal.hospitals)

    def _connection(self, node: str, conn_id: str, entry: ConnectionEntry, step: int) -> None:
        """... and as they authenticate a connection to this node."""
        if step > 0 and node == self.cluster.node_id:
            self._record(entry.sub, entry.role, entry.name, entry.hospitals)

    def _record(self, sub: str, role: str, name: str | None, hospitals: frozenset[str]) -> None:
        """Written only when it changed since this node last wrote it."""
        if role == "service":
            return  # service accounts are not staff: never notified
        seen = (role, name, hospitals)
        if self._recorded.get(sub) == seen:
            return
        self._recorded[sub] = seen
        self._spawn(self.store.remember(sub, role, name, hospitals, self.clock()))

    # --- the rules ----------------------------------------------------------------------------

    def alert_committed(
        self, event_type: str, actor: str, before: Alert | None, after: Alert
    ) -> None:
        """Heard from AlertService on the node that committed the change: the fast path (the
        sweep, services/notification_sweep.py, writes whatever this one lost)."""
        if event_type in ("alert.updated", "alert.escalated"):
            self._spawn(self.apply_rules(event_type, actor, before, after))

    async def apply_rules(
        self,
        event_type: str,
        actor: str,
        before: Alert | None,
        after: Alert,
        missing_only: bool = False,
    ) -> list[NotificationRecord]:
        """The alert rules for one committed change; what they wrote (nothing when a repeat).
        `missing_only` (the sweep) first reads who has it already and writes only for the
        others: usually nobody is left, and no write transaction is spent."""
        if event_type == "alert.updated":
            assignee = after.assigned_to
            if assignee is None or assignee == actor:
                return []
            if before is not None and before.assigned_to == assignee:
                return []
            return await self.notify(
                [assignee],
                "alert.assigned",
                f"Assigned to you: {after.title}",
                after.location,
                after.hospital_id,
                after.id,
                dedupe_key=f"alert.assigned:{after.id}:{after.version}",
                missing_only=missing_only,
            )
        if event_type == "alert.escalated":
            return await self._escalated(actor, after, missing_only)
        return []

    async def _escalated(
        self, actor: str, alert: Alert, missing_only: bool
    ) -> list[NotificationRecord]:
        charge = await self.store.staff_of(alert.hospital_id, frozenset({"charge_nurse"}))
        recipients = [r for r in [alert.assigned_to, *charge] if r and r != actor]
        return await self.notify(
            recipients,
            "alert.escalated",
            f"Escalated to level {alert.escalation_level}: {alert.title}",
            alert.location,
            alert.hospital_id,
            alert.id,
            dedupe_key=f"alert.escalated:{alert.id}:{alert.version}",
            missing_only=missing_only,
        )

    async def notify_webhook_disabled(
        self,
        hospital_id: str,
        webhook_id: str,
        url: str | None = None,
        disabled_at: float | None = None,
    ) -> list[NotificationRecord]:
        """Tell the hospital's admins that an endpoint was disabled after failing too long.
        With `disabled_at`, a second call for the same disabling writes nothing."""
        admins = await self.store.staff_of(hospital_id, frozenset({"admin"}))
        where = f" ({url})" if url else ""
        occasion = format(disabled_at, ".3f") if disabled_at is not None else None
        return await self.notify(
            admins,
            "webhook.disabled",
            "A webhook endpoint was disabled",
            f"Endpoint {webhook_id}{where} failed for 24 h and no longer receives events.",
            hospital_id,
            None,
            dedupe_key=None if occasion is None else f"webhook.disabled:{webhook_id}:{occasion}",
        )

    async def broadcast(
        self, hospital_id: str, title: str, message: str, severity: str
    ) -> list[NotificationRecord]:
        staff = await self.store.staff_of(hospital_id, None)
        return await self.notify(
            staff, "broadcast", title, message, hospital_id, None, severity=severity
        )

    async def notify(
        self,
        recipients: Sequence[str],
        kind: str,
        title: str,
        message: str | None,
        hospital_id: str | None,
        alert_id: str | None,
        severity: str | None = None,
        dedupe_key: str | None = None,
        missing_only: bool = False,
    ) -> list[NotificationRecord]:
        if missing_only and dedupe_key is not None:
            unique = list(dict.fromkeys(recipients))
            holding = await self.store.holding(dedupe_key, unique)
            recipients = [r for r in unique if r not in holding]
        now = self.clock()
        items = [
            NewNotification(
                r, kind, title, message, hospital_id, alert_id, severity, now, dedupe_key
            )
            for r in dict.fromkeys(recipients)
        ]
        if not items:
            return []
        written = await self.store.add(items)
        if written:
            await self._announce([n.recipient for n in written])
        return written

    # --- the inbox ----------------------------------------------------------------------------

    async def page(
        self, sub: str, unread_only: bool, before_id: int | None, limit: int
    ) -> tuple[list[Notification], str | None, int]:
        records = await self.store.page(sub, unread_only, before_id, limit + 1)
        more = len(records) > limit
        records = records[:limit]
        cursor = str(records[-1].id) if more and records else None
        return [wire(r) for r in records], cursor, await self.store.unread(sub)

    async def mark_read(self, sub: str, ids: Sequence[int] | None) -> tuple[list[int], int]:
        changed = await self.store.mark_read(sub, ids, self.clock())
        for start in range(0, len(changed), MAX_IDS_PER_MESSAGE):
            chunk = changed[start : start + MAX_IDS_PER_MESSAGE]
            await self._publish(NotificationsChanged(subs=[sub], read_ids=chunk))
        return changed, await self.store.unread(sub)

    async def stream(
        self, sub: str, after_id: int | None
    ) -> AsyncGenerator[Tracked[NotificationEvent]]:
        """New notifications (after `after_id` first, when given), read ids and the unread
        count, for one user, until the subscriber leaves.

        The subscription is in place, and "from now" fixed, when this returns: before the
        subscriber is told it has started. (Were both done when the stream is first read,
        a notification written in between would be counted as already seen, and never sent.)
        The inboxes are held weakly: a stream dropped before it was ever read leaves none."""
        inbox = _Inbox()
        self._inboxes.setdefault(sub, weakref.WeakSet()).add(inbox)
        try:
            position = await self.store.newest_id(sub) if after_id is None else after_id
        except BaseException:
            self._leave(sub, inbox)
            raise
        return self._follow(sub, inbox, position)

    async def _follow(
        self, sub: str, inbox: _Inbox, position: int
    ) -> AsyncGenerator[Tracked[NotificationEvent]]:
        try:
            shown: int | None = None
            while True:
                inbox.wake.clear()
                reads, inbox.reads = inbox.reads, []
                new = await self.store.after(sub, position, BATCH)
                for record in new:
                    position = record.id
                    event = NotificationNew(type="notification.new", notification=wire(record))
                    yield Tracked(format_event_id(position), event)
                if reads:
                    ids = [format_event_id(i) for i in sorted(set(reads))]
                    read = NotificationRead(type="notification.read", ids=ids)
                    yield Tracked(marker_id(position), read)
                unread = await self.store.unread(sub)
                if unread != shown:
                    shown = unread
                    count = NotificationCount(type="notification.count", unread=unread)
                    yield Tracked(marker_id(position), count)
                if len(new) < BATCH and not inbox.wake.is_set():
                    await inbox.wake.wait()
        finally:
            self._leave(sub, inbox)

    def _leave(self, sub: str, inbox: _Inbox) -> None:
        inboxes = self._inboxes.get(sub)
        if inboxes is not None:
            inboxes.discard(inbox)
            if not inboxes:
                del self._inboxes[sub]

    # --- the cluster --------------------------------------------------------------------------

    async def _announce(self, subs: list[str]) -> None:
        unique = list(dict.fromkeys(subs))
        if len(unique) > MAX_SUBS_PER_MESSAGE:
            await self._publish(NotificationsChanged(everyone=True))
            return
        await self._publish(NotificationsChanged(subs=unique))

    async def _publish(self, message: NotificationsChanged) -> None:
        if not await self.cluster.publish(message):
            log.warning("a notification change did not reach the other nodes")

    def _heard(self, message: NotificationsChanged) -> None:
        targets = list(self._inboxes) if message.everyone else message.subs
        for sub in targets:
            for inbox in list(self._inboxes.get(sub, ())):
                if message.read_ids and sub == message.subs[0]:
                    inbox.reads.extend(message.read_ids)
                inbox.wake.set()

    def _spawn(self, work: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("a notification could not be written (%s)", type(task.exception()).__name__)
