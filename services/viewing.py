"""Who is looking at an alert, and typing about it (`presence.viewing`,
`presence.subscribeToAlert`): so that two nurses do not run to the same bed unknowingly.

Ephemeral by design: never stored. A look is broadcast to every node (`presence.viewing`),
each node keeps the looks in memory and forgets one by itself when
- it is not repeated within VIEWING_TTL_S (the client went quiet; clients repeat it while the
  alert is on screen), or `typing` is not repeated within TYPING_TTL_S (typing stops alone),
- the connection it came from closes (on any node: every node sees it in the connection view),
- the user goes away (PresenceService tells it), or the client says `viewing: false`.
Expiry times are taken from each node's own clock when the look arrives, so nodes whose clocks
differ still agree within the broadcast's delay.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from typing import ClassVar

from rpc.cluster import ClusterMessage, ClusterState
from schemas.presence import AlertViewer, AlertViewers
from services.feeds import Feed

VIEWING_TTL_S = 30.0
TYPING_TTL_S = 6.0
# A repeat that says nothing new within this long of the last broadcast is not broadcast again.
RENEW_AFTER_S = 2.0

Key = tuple[str, str]  # (node, connection id)


class ViewingMessage(ClusterMessage):
    kind: ClassVar[str] = "presence.viewing"
    node: str
    conn: str
    alert_id: str
    sub: str
    name: str
    role: str
    typing: bool
    viewing: bool


@dataclass(slots=True)
class _Look:
    sub: str
    name: str
    role: str
    until: float
    typing_until: float  # 0 when not typing


class AlertViewing:
    def __init__(self, cluster: ClusterState, clock: Callable[[], float]) -> None:
        self.cluster = cluster
        self.clock = clock
        self._looks: dict[str, dict[Key, _Look]] = {}  # alert -> looks
        self._by_conn: dict[Key, set[str]] = {}  # connection -> alerts it looks at
        self._shown: dict[str, AlertViewers] = {}  # alert -> last pushed (only while watched)
        self._feeds: dict[str, set[Feed[AlertViewers]]] = {}
        self.stop = cluster.on_message(ViewingMessage, self._heard)  # stops hearing looks

    async def look(
        self, conn_id: str, sub: str, name: str, role: str, alert_id: str, typing: bool, on: bool
    ) -> AlertViewers:
        if on and self._fresh(conn_id, alert_id, typing):
            return self.viewers(alert_id)  # nothing to tell the cluster yet (keystrokes)
        message = ViewingMessage(
            node=self.cluster.node_id,
            conn=conn_id,
            alert_id=alert_id,
            sub=sub,
            name=name,
            role=role,
            typing=typing and on,
            viewing=on,
        )
        await self.cluster.publish(message)  # heard here at once too
        return self.viewers(alert_id)

    def _fresh(self, conn_id: str, alert_id: str, typing: bool) -> bool:
        """Whether this connection's look already says this and has most of its time left:
        a client that sends `typing` on every keystroke costs one broadcast per few seconds."""
        look = self._looks.get(alert_id, {}).get((self.cluster.node_id, conn_id))
        if look is None:
            return False
        now = self.clock()
        if look.until - now < VIEWING_TTL_S - RENEW_AFTER_S:
            return False
        if typing:
            return look.typing_until - now >= TYPING_TTL_S - RENEW_AFTER_S
        return look.typing_until == 0.0

    def viewers(self, alert_id: str) -> AlertViewers:
        now = self.clock()
        people: dict[str, AlertViewer] = {}
        for look in self._looks.get(alert_id, {}).values():
            typing = look.typing_until > now
            seen = people.get(look.sub)
            if seen is None or (typing and not seen.typing):
                people[look.sub] = AlertViewer(
                    sub=look.sub, name=look.name, role=look.role, typing=typing
                )
        ordered = [people[sub] for sub in sorted(people)]
        return AlertViewers(type="alert.viewers", alert_id=alert_id, viewers=ordered)

    async def stream(self, alert_id: str) -> AsyncGenerator[AlertViewers]:
        feed: Feed[AlertViewers] = Feed(lambda: self._current(alert_id))
        self._feeds.setdefault(alert_id, set()).add(feed)
        try:
            async for item in feed.items():
                yield item
        finally:
            feeds = self._feeds.get(alert_id)
            if feeds is not None:
                feeds.discard(feed)
                if not feeds:
                    del self._feeds[alert_id]
                    self._shown.pop(alert_id, None)

    def _current(self, alert_id: str) -> AlertViewers:
        shown = self._shown[alert_id] = self.viewers(alert_id)
        return shown

    # --- changes -----------------------------------------------------------------------------

    def _heard(self, message: ViewingMessage) -> None:
        key = (message.node, message.conn)
        alert_id = message.alert_id
        if message.viewing:
            now = self.clock()
            typing_until = now + TYPING_TTL_S if message.typing else 0.0
            look = _Look(message.sub, message.name, message.role, now + VIEWING_TTL_S, typing_until)
            self._looks.setdefault(alert_id, {})[key] = look
            self._by_conn.setdefault(key, set()).add(alert_id)
        else:
            self._remove(alert_id, key)
        self._changed(alert_id)

    def connection(self, node: str, conn_id: str, step: int) -> None:
        """A connection of any node closed: what it was looking at is no longer looked at."""
        if step > 0:
            return
        for alert_id in self._by_conn.pop((node, conn_id), set()):
            self._remove(alert_id, (node, conn_id))
            self._changed(alert_id)

    def drop_user(self, sub: str) -> None:
        for alert_id, looks in list(self._looks.items()):
            keys = [key for key, look in looks.items() if look.sub == sub]
            for key in keys:
                self._remove(alert_id, key)
            if keys:
                self._changed(alert_id)

    def tick(self) -> None:
        now = self.clock()
        for alert_id, looks in list(self._looks.items()):
            changed = False
            for key, look in list(looks.items()):
                if look.until <= now:
                    self._remove(alert_id, key)
                    changed = True
                elif look.typing_until and look.typing_until <= now:
                    look.typing_until = 0.0
                    changed = True
            if changed:
                self._changed(alert_id)

    def _remove(self, alert_id: str, key: Key) -> None:
        looks = self._looks.get(alert_id)
        if looks is not None:
            looks.pop(key, None)
            if not looks:
                del self._looks[alert_id]
        alerts = self._by_conn.get(key)
        if alerts is not None:
            alerts.discard(alert_id)
            if not alerts:
                del self._by_conn[key]

    def _changed(self, alert_id: str) -> None:
        feeds = self._feeds.get(alert_id)
        if not feeds:
            return
        now = self.viewers(alert_id)
        if self._shown.get(alert_id) == now:
            return
        self._shown[alert_id] = now
        for feed in tuple(feeds):
            feed.push(now)

    def queued(self, alert_id: str) -> int:
        return sum(len(feed) for feed in self._feeds.get(alert_id, ()))

    def looked_at(self) -> int:
        """Alerts with at least one viewer (for tests and the benchmark)."""
        return len(self._looks)
