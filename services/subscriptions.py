"""AlertSubscriptionService: who hears which alert events, and replay for those who missed some.

EventEmitter-style: the store's commits are `publish`ed here (after the commit, in event order)
and each goes to the hospital-wide listeners of its hospital and to the listeners of its alert.
Each hospital keeps its last RING_SIZE events in memory; a subscriber that names a
`lastEventId` gets exactly the events after it, from that ring when it reaches back far enough
and from the durable log when not, then the live stream. The live listener is attached before
history is read and the two are merged by event id, so nothing falls between them and nothing
comes twice. Only a position the log no longer has (pruned by retention, or never ours) starts
the stream with `stream.reset`, never silently.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Sequence

from rpc.errors import INTERNAL_MESSAGE, ErrorCode, RpcError
from rpc.fanout import SlicedFanout
from rpc.stream import EventSink, PushStream
from schemas.alerts import AlertEvent, AlertEventPage, StreamReset
from services.store import AlertStore, StoredEvent, format_event_id, parse_event_id

log = logging.getLogger("alertwire.subscriptions")

RING_SIZE = 100
REPLAY_PAGE = 500

Listener = Callable[[StoredEvent], None]


class Topic:
    """One hospital's stream: the replay ring, its live listeners and its positions.

    An event is in the ring (so replay finds it) as soon as it is published; its live
    delivery is sliced (rpc.fanout) so a large audience does not hold the loop."""

    __slots__ = (
        "by_alert",
        "fanout",
        "floor",
        "hospital_id",
        "listeners",
        "newest",
        "pruned",
        "ring",
    )

    def __init__(
        self, hospital_id: str, delivered: Callable[[StoredEvent], None] | None = None
    ) -> None:
        self.hospital_id = hospital_id
        self.ring: deque[StoredEvent] = deque(maxlen=RING_SIZE)
        # Every event of this hospital after `floor` is in the ring (None: not known yet).
        self.floor: int | None = None
        self.newest = 0
        self.pruned = 0  # a position below this is no longer in the log
        self.listeners: set[AlertStream] = set()
        self.by_alert: dict[str, set[AlertStream]] = {}
        self.fanout: SlicedFanout[StoredEvent, AlertStream] = SlicedFanout(
            self._audience, _push, done=delivered
        )

    def publish(self, event: StoredEvent) -> None:
        ring = self.ring
        if len(ring) == RING_SIZE:
            self.floor = max(self.floor or 0, ring[0].seq)
        ring.append(event)
        self.newest = max(self.newest, event.seq)
        self.fanout.publish(event)

    def _audience(self, event: StoredEvent) -> tuple[AlertStream, ...]:
        watchers = self.by_alert.get(event.alert_id)
        if watchers:
            return (*self.listeners, *watchers)
        return tuple(self.listeners)

    def in_ring(self, after: int) -> bool:
        return self.floor is not None and after >= self.floor

    def attach(self, stream: AlertStream) -> None:
        if stream.alert_id is None:
            self.listeners.add(stream)
        else:
            self.by_alert.setdefault(stream.alert_id, set()).add(stream)

    def detach(self, stream: AlertStream) -> None:
        if stream.alert_id is None:
            self.listeners.discard(stream)
            return
        watchers = self.by_alert.get(stream.alert_id)
        if watchers is not None:
            watchers.discard(stream)
            if not watchers:
                del self.by_alert[stream.alert_id]


def _push(stream: AlertStream, event: StoredEvent) -> None:
    try:
        stream.push(event)
    except Exception:  # one broken subscriber must not cost the others the event
        stream.fail()


class AlertSubscriptionService:
    def __init__(self, store: AlertStore) -> None:
        self.store = store
        self._topics: dict[str, Topic] = {}
        self._loading: dict[str, asyncio.Future[None]] = {}
        self._listeners: list[Listener] = []
        self._heard: dict[str, int] = {}  # each hospital's last position the listeners heard
        # Hears the commit time (time.perf_counter) of each event this node committed, once
        # it has been handed to every subscriber here (the delivery-delay histogram).
        self.on_delivered: Callable[[float], None] | None = None

    # --- the emitter ----------------------------------------------------------------------

    def on(self, listener: Listener) -> Callable[[], None]:
        """Hear every committed event of every hospital (metrics, escalation)."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def publish(self, events: Sequence[StoredEvent]) -> None:
        """Called after each commit with its events in order: by the store on one node, by the
        event bus (services/bus.py) in a cluster, where an event can come twice (this node's
        own commits come back from the database). Each position goes to the topic and to the
        listeners at most once: positions increase within a hospital on either store."""
        for event in events:
            topic = self._topics.get(event.hospital_id)
            if topic is not None and event.seq > topic.newest:
                topic.publish(event)
            if event.seq <= self._heard.get(event.hospital_id, 0):
                continue
            self._heard[event.hospital_id] = event.seq
            for listener in tuple(self._listeners):
                try:
                    listener(event)
                except Exception:  # metrics or escalation trouble must not stop delivery
                    log.exception("an alert event listener failed; the others go on")

    def _delivered(self, event: StoredEvent) -> None:
        hook = self.on_delivered
        if hook is not None and event.committed_at:  # another node's event: its clock is not ours
            hook(event.committed_at)

    def pruned(self, marks: dict[str, int]) -> None:
        for hospital_id, through in marks.items():
            topic = self._topics.get(hospital_id)
            if topic is not None:
                topic.pruned = max(topic.pruned, through)

    async def topic(self, hospital_id: str) -> Topic:
        """The hospital's topic, its positions read from the log on first use. The topic exists
        (and hears publishes) before that read, so no event can slip between."""
        topic = self._topics.get(hospital_id)
        if topic is None:
            topic = self._topics[hospital_id] = Topic(hospital_id, self._delivered)
            self._loading[hospital_id] = asyncio.ensure_future(self._load(topic))
        loading = self._loading.get(hospital_id)
        if loading is not None:
            await asyncio.shield(loading)
        return topic

    def loaded(self, hospital_id: str) -> Topic | None:
        """The hospital's topic once its positions are known; None while they are being read
        or when no one on this node has subscribed to it."""
        if hospital_id in self._loading:
            return None
        return self._topics.get(hospital_id)

    def has_topic(self, hospital_id: str) -> bool:
        """Someone on this node subscribed to the hospital (its topic may still be loading)."""
        return hospital_id in self._topics

    async def settled(self, hospital_id: str) -> Topic | None:
        """The hospital's topic after any load under way (None: there is none, or it failed)."""
        loading = self._loading.get(hospital_id)
        if loading is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(loading)
        return self.loaded(hospital_id)

    def hospitals(self) -> list[str]:
        """The hospitals whose topics are loaded on this node."""
        return [h for h in self._topics if h not in self._loading]

    async def _load(self, topic: Topic) -> None:
        try:
            newest, pruned = await self.store.positions(topic.hospital_id)
        except BaseException:
            del self._topics[topic.hospital_id]
            raise
        finally:
            self._loading.pop(topic.hospital_id, None)
        topic.newest = max(topic.newest, newest)
        topic.pruned = max(topic.pruned, pruned)
        topic.floor = topic.ring[0].seq - 1 if topic.ring else newest

    # --- reading ----------------------------------------------------------------------------

    def check_position(self, topic: Topic, last_event_id: str) -> tuple[int | None, str]:
        """(position, "") when the log can replay from `last_event_id`, else (None, reason)."""
        after = parse_event_id(last_event_id)
        if after is None or after > topic.newest:
            return None, "The given lastEventId is not a position of this stream"
        if after < topic.pruned:
            return None, "The given lastEventId is older than the retained history"
        return after, ""

    async def history(
        self, topic: Topic, after: int, limit: int, alert_id: str | None = None
    ) -> list[StoredEvent]:
        """Up to `limit` committed events after `after`, oldest first: from the ring when it
        reaches back that far, else from the log."""
        if topic.in_ring(after):
            return [
                e
                for e in topic.ring
                if e.seq > after and (alert_id is None or e.alert_id == alert_id)
            ][:limit]
        return await self.store.events_after(topic.hospital_id, after, limit, alert_id)

    def reset_event(self, topic: Topic, reason: str) -> tuple[str, bytes]:
        newest = format_event_id(topic.newest)
        reset = StreamReset(
            id=newest, type="stream.reset", hospital_id=topic.hospital_id, reason=reason
        )
        return newest, reset.model_dump_json(by_alias=True).encode()

    async def page(self, hospital_id: str, last_event_id: str | None, limit: int) -> AlertEventPage:
        """The polling fallback: the events after `last_event_id` (without it, the newest)."""
        topic = await self.topic(hospital_id)
        if last_event_id is None:
            events = await self.store.newest_events(hospital_id, limit)
            return _page(events, format_event_id(topic.newest))
        after, reason = self.check_position(topic, last_event_id)
        if after is None:
            newest, payload = self.reset_event(topic, reason)
            return AlertEventPage(
                events=[StreamReset.model_validate_json(payload)], last_event_id=newest
            )
        events = await self.history(topic, after, limit)
        return _page(events, events[-1].id if events else last_event_id)

    async def stream(
        self, hospital_id: str, alert_id: str | None, last_event_id: str | None
    ) -> AlertStream:
        topic = await self.topic(hospital_id)
        return AlertStream(self, topic, alert_id, last_event_id)


def _page(events: list[StoredEvent], last_event_id: str) -> AlertEventPage:
    return AlertEventPage(
        events=[AlertEvent.model_validate_json(e.payload) for e in events],
        last_event_id=last_event_id,
    )


class AlertStream(PushStream):
    """One subscriber's alert events: live from construction; history first on `start`."""

    def __init__(
        self,
        service: AlertSubscriptionService,
        topic: Topic,
        alert_id: str | None,
        last_event_id: str | None,
    ) -> None:
        super().__init__()
        self.service = service
        self.topic = topic
        self.alert_id = alert_id
        self.last_event_id = last_event_id
        self._delivered = 0  # highest seq handed to the sink
        self._held: list[StoredEvent] | None = []  # live events that came during history
        topic.attach(self)

    def push(self, event: StoredEvent) -> None:
        if self._closed:  # the attribute, not the property: this runs once per subscriber
            return
        if self._held is not None:
            self._held.append(event)
        elif event.seq > self._delivered and self._sink is not None:
            self._delivered = event.seq
            self._sink.event(event.id, event.payload)

    async def _open(self, sink: EventSink) -> None:
        if self.last_event_id is not None:
            await self._replay(sink, self.last_event_id)
        held, self._held = self._held or [], None
        for event in held:
            if self.closed:
                return
            self.push(event)

    async def _replay(self, sink: EventSink, last_event_id: str) -> None:
        service, topic = self.service, self.topic
        after, reason = service.check_position(topic, last_event_id)
        if after is None:
            newest, payload = service.reset_event(topic, reason)
            self._delivered = topic.newest
            sink.event(newest, payload)
            return
        self._delivered = after
        while not self.closed:
            page = await service.history(topic, self._delivered, REPLAY_PAGE, self.alert_id)
            for event in page:
                if event.seq > self._delivered:
                    self._delivered = event.seq
                    sink.event(event.id, event.payload)
            if len(page) < REPLAY_PAGE:
                return
            await asyncio.sleep(0)  # let the writers flush before the next page

    def fail(self) -> None:
        """Delivery to this subscriber broke: log it, end its subscription with an internal
        error (the client resumes from its last event id), and let the rest go on."""
        log.exception("delivering an alert event to a subscriber failed")
        sink = self._sink
        self.close()
        if sink is not None:
            sink.end(RpcError(ErrorCode.INTERNAL_SERVER_ERROR, INTERNAL_MESSAGE))

    def _close(self) -> None:
        self.topic.detach(self)
        self._held = None
