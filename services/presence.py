"""Presence (CONTRACT 10): which staff are connected to each hospital and how reachable they
are, computed on every node from the cluster's view of live connections (rpc.cluster), so that
nothing of it is stored and every node answers the same.

- A user is present while any connection of theirs lives on any node, and stays so for
  GRACE_S after the last one closes: a reconnect within that is no change (no flap).
- Status: `busy` or `away` when the user set it (`presence.set`), else `away` once no node
  holding a connection of theirs has heard a call from them for PRESENCE_AWAY_SECONDS, else
  `online`. Each node times its own connections and tells the others only when a user
  becomes idle or active there (a `presence.activity` broadcast), not on every call.
- What a user set (status, activity) is broadcast (`presence.status`) and also kept in a
  shared key, so that a node that starts later learns it; it is forgotten when the user goes
  offline.
- Service accounts are not staff: never listed. A member is listed in the hospitals their
  tokens grant, so a subscriber (who must hold the hospital) sees only users who share it.

Changes are pushed synchronously to the hospital's subscribers (services.feeds); a periodic
`tick` (every TICK_S, or driven by tests with an injected clock) turns time into changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, ClassVar

import orjson

from rpc.cluster import ClusterMessage, ClusterState, ClusterUnavailable, ConnectionEntry
from rpc.context import Principal
from schemas.presence import (
    PresenceChanged,
    PresenceEvent,
    PresenceLeft,
    PresenceMember,
    PresenceSnapshot,
    PresenceStatus,
)
from services.feeds import Feed
from services.lifecycle import iso
from services.viewing import AlertViewing

log = logging.getLogger("alertwire.presence")

GRACE_S = 10.0
TICK_S = 1.0
STATUS_KEY_TTL_S = 24 * 3600.0
Clock = Callable[[], float]


class PresenceActivity(ClusterMessage):
    """A node's connections of `sub` became idle (no call for the away period) or active."""

    kind: ClassVar[str] = "presence.activity"
    node: str
    sub: str
    idle: bool


class PresenceStatusSet(ClusterMessage):
    """What the user set, whole: `status` None is the automatic one."""

    kind: ClassVar[str] = "presence.status"
    sub: str
    status: PresenceStatus | None = None
    activity: str | None = None


def status_key(sub: str) -> str:
    return "presence:status:" + sub


@dataclass(slots=True)
class _User:
    conns: dict[tuple[str, str], ConnectionEntry] = field(default_factory=dict)
    idle_nodes: set[str] = field(default_factory=set)
    manual: PresenceStatus | None = None
    activity: str | None = None
    gone_since: float | None = None
    status: PresenceStatus | None = None
    since: float = 0.0


class PresenceService:
    def __init__(self, cluster: ClusterState, clock: Clock, away_s: float = 300.0) -> None:
        self.cluster = cluster
        self.clock = clock
        self.away_s = away_s
        self.grace_s = GRACE_S
        self.viewing = AlertViewing(cluster, clock)
        self._users: dict[str, _User] = {}
        self._members: dict[str, dict[str, PresenceMember]] = {}  # hospital -> sub -> shown
        self._feeds: dict[str, set[Feed[PresenceEvent]]] = {}
        self._last_call: dict[str, float] = {}  # subs with a connection on this node
        self._idle_here: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._ticker: asyncio.Task[None] | None = None
        self._off = [
            cluster.on_connection(self._connection),
            cluster.on_message(PresenceActivity, self._activity),
            cluster.on_message(PresenceStatusSet, self._status_set),
        ]
        for node, conn_id, entry in cluster.connection_entries():
            self._connection(node, conn_id, entry, +1)

    # --- reads -------------------------------------------------------------------------------

    def snapshot(self, hospital_id: str) -> PresenceSnapshot:
        members = self._members.get(hospital_id, {})
        ordered = [members[sub] for sub in sorted(members)]
        return PresenceSnapshot(type="presence.snapshot", hospital_id=hospital_id, members=ordered)

    def member(self, sub: str) -> PresenceMember | None:
        for members in self._members.values():
            if sub in members:
                return members[sub]
        return None

    def queued(self, hospital_id: str) -> int:
        """Events pushed to the hospital's subscribers and not yet read (tests, benchmark)."""
        return sum(len(feed) for feed in self._feeds.get(hospital_id, ()))

    @property
    def pending(self) -> int:
        """Broadcasts and key reads started and not yet done."""
        return len(self._tasks)

    async def stream(self, hospital_id: str) -> AsyncGenerator[PresenceEvent]:
        feed: Feed[PresenceEvent] = Feed(lambda: self.snapshot(hospital_id))
        self._feeds.setdefault(hospital_id, set()).add(feed)
        try:
            async for item in feed.items():
                yield item
        finally:
            feeds = self._feeds.get(hospital_id)
            if feeds is not None:
                feeds.discard(feed)
                if not feeds:
                    del self._feeds[hospital_id]

    # --- what the server tells it ------------------------------------------------------------

    def heard_call(self, principal: Principal) -> None:
        """A call from `principal` on this node (any transport): they are active here."""
        sub = principal.sub
        if sub not in self._last_call:
            return  # no live connection here: nothing to keep awake
        self._last_call[sub] = self.clock()
        if sub in self._idle_here:
            self._idle_here.discard(sub)
            self._send(PresenceActivity(node=self.cluster.node_id, sub=sub, idle=False))

    async def set(
        self, sub: str, status: PresenceStatus | None, activity: str | None
    ) -> tuple[PresenceStatus, str | None]:
        """Set what the user chose (fields left None stay); returns the status and activity
        now in force."""
        user = self._users.get(sub)
        manual = user.manual if user is not None else None
        current = user.activity if user is not None else None
        if status is not None:
            manual = None if status == "online" else status
        if activity is not None:
            current = activity or None
        message = PresenceStatusSet(sub=sub, status=manual, activity=current)
        await self.cluster.publish(message)
        with contextlib.suppress(ClusterUnavailable):
            await self.cluster.delete(status_key(sub))
            if manual is not None or current is not None:
                raw = orjson.dumps(message.model_dump(mode="json")).decode()
                await self.cluster.set_if_absent(status_key(sub), raw, STATUS_KEY_TTL_S)
        user = self._users.get(sub)
        shown: PresenceStatus = manual or ("away" if user and self._idle(user) else "online")
        return shown, current

    # --- time --------------------------------------------------------------------------------

    async def start(self) -> None:
        self._ticker = asyncio.create_task(self._tick_forever(), name="presence")

    async def stop(self) -> None:
        if self._off:  # stop may be called more than once
            for off in self._off:
                off()
            self._off = []
            self.viewing.stop()
        tasks = [t for t in (self._ticker, *self._tasks) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._ticker = None

    async def _tick_forever(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            try:
                self.tick()
            except Exception:
                log.exception("presence tick failed")

    def tick(self) -> None:
        now = self.clock()
        for sub, last in list(self._last_call.items()):
            if sub not in self._idle_here and now - last >= self.away_s:
                self._idle_here.add(sub)
                self._send(PresenceActivity(node=self.cluster.node_id, sub=sub, idle=True))
        for sub, user in list(self._users.items()):
            gone = user.gone_since
            if not user.conns and gone is not None and now - gone >= self.grace_s:
                self._recompute(sub)
        self.viewing.tick()

    # --- cluster events ----------------------------------------------------------------------

    def _connection(self, node: str, conn_id: str, entry: ConnectionEntry, step: int) -> None:
        if not entry.staff:
            return  # service accounts are not staff
        self.viewing.connection(node, conn_id, step)
        sub = entry.sub
        user = self._users.get(sub)
        if user is None:
            if step < 0:
                return
            user = self._users[sub] = _User()
            self._spawn(self._load_status(sub))
        key = (node, conn_id)
        here = node == self.cluster.node_id
        if step > 0:
            user.conns[key] = entry
            user.gone_since = None
            user.idle_nodes.discard(node)  # a new connection is activity there
            if here:
                self._last_call[sub] = self.clock()
                self._idle_here.discard(sub)
        else:
            user.conns.pop(key, None)
            if not any(n == node for n, _ in user.conns):
                user.idle_nodes.discard(node)
                if here:
                    self._last_call.pop(sub, None)
                    self._idle_here.discard(sub)
            if not user.conns:
                user.gone_since = self.clock()
        self._recompute(sub)

    def _activity(self, message: PresenceActivity) -> None:
        user = self._users.get(message.sub)
        if user is None:
            return
        if message.idle and any(n == message.node for n, _ in user.conns):
            user.idle_nodes.add(message.node)
        else:
            user.idle_nodes.discard(message.node)
        self._recompute(message.sub)

    def _status_set(self, message: PresenceStatusSet) -> None:
        user = self._users.get(message.sub)
        if user is None:
            return
        user.manual, user.activity = message.status, message.activity
        self._recompute(message.sub)

    async def _load_status(self, sub: str) -> None:
        """A user first seen here may have set a status on another node before."""
        try:
            raw = await self.cluster.get(status_key(sub))
        except ClusterUnavailable:
            return
        user = self._users.get(sub)
        if raw is None or user is None or user.manual is not None or user.activity is not None:
            return
        try:
            message = PresenceStatusSet.model_validate_json(raw)
        except ValueError:
            return
        self._status_set(message)

    # --- members -----------------------------------------------------------------------------

    @staticmethod
    def _idle(user: _User) -> bool:
        nodes = {node for node, _ in user.conns}
        return bool(nodes) and nodes <= user.idle_nodes

    def _recompute(self, sub: str) -> None:
        user = self._users.get(sub)
        if user is None:
            return
        now = self.clock()
        if not user.conns:
            if user.gone_since is not None and now - user.gone_since < self.grace_s:
                return  # within the grace period: shown as it was
            del self._users[sub]
            self._last_call.pop(sub, None)
            self._idle_here.discard(sub)
            self._show(sub, None, frozenset())
            self._spawn(self._forget_status(sub))
            return
        entries = sorted(user.conns.values(), key=lambda e: (e.role, e.name or ""))
        status: PresenceStatus = user.manual or ("away" if self._idle(user) else "online")
        if status != user.status:
            user.status, user.since = status, now
        if status == "away":
            self.viewing.drop_user(sub)
        name = next((e.name for e in entries if e.name), sub)
        member = PresenceMember(
            sub=sub,
            name=name,
            role=entries[0].role,
            status=status,
            activity=user.activity,
            devices=len(entries),
            since=iso(user.since),
        )
        hospitals = frozenset().union(*(e.hospitals for e in entries))
        self._show(sub, member, hospitals)

    def _show(self, sub: str, member: PresenceMember | None, hospitals: frozenset[str]) -> None:
        for hospital in hospitals:
            members = self._members.setdefault(hospital, {})
            if members.get(sub) != member and member is not None:
                members[sub] = member
                self._push(hospital, PresenceChanged(type="presence.changed", member=member))
        for hospital, members in list(self._members.items()):
            if hospital not in hospitals and sub in members:
                del members[sub]
                if not members:
                    del self._members[hospital]
                self._push(hospital, PresenceLeft(type="presence.left", sub=sub))

    def _push(self, hospital: str, event: PresenceEvent) -> None:
        for feed in tuple(self._feeds.get(hospital, ())):
            feed.push(event)

    async def _forget_status(self, sub: str) -> None:
        with contextlib.suppress(ClusterUnavailable):
            await self.cluster.delete(status_key(sub))

    def _send(self, message: ClusterMessage) -> None:
        self._spawn(self._publish(message))

    async def _publish(self, message: ClusterMessage) -> None:
        if not await self.cluster.publish(message):
            log.warning("a presence change did not reach the other nodes")

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            work.close()  # no loop (a synchronous caller): nothing to run it on
            return
        task = loop.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
