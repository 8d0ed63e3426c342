"""What a subscription procedure returns, and how its events reach a connection.

A subscription is an async iterator of events, each optionally `Tracked` with an id. Plain
async generators work (the session drives them in a task). For the fan-out hot path a source
may instead be a `PushStream`: the session hands it an `EventSink` and the source calls it
synchronously with payloads that are already JSON, encoded once for every subscriber. A
`PushStream` is still an async iterator, so tests and other callers can consume it directly.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

import orjson

from rpc.errors import RpcError

T = TypeVar("T")


class FrameTail:
    """The end of an event frame that every subscriber of a dialect shares: from the event id to
    the last brace. Fan-out asks for the same event's tail once per subscriber in a row, so the
    last one is kept; only the head (the subscription's own id) is joined per subscriber. Keyed
    by the payload object itself, which is shared, never copied."""

    __slots__ = ("_build", "_event_id", "_payload", "_tail")

    def __init__(self, build: Callable[[bytes, bytes], bytes]) -> None:
        self._build = build  # (event id as JSON, payload) -> tail
        self._event_id = ""
        self._payload = b""
        self._tail = b""

    def get(self, event_id: str, payload: bytes) -> bytes:
        if payload is not self._payload or event_id != self._event_id:
            self._tail = self._build(orjson.dumps(event_id), payload)
            self._event_id, self._payload = event_id, payload
        return self._tail


class SharedFrames:
    """Whole event frames of the event being fanned out, one per subscription head: every
    subscriber whose subscription has the same head (the same dialect and subscription id, as
    most sockets' first subscription does) is handed the very same bytes, built once. Keyed,
    like FrameTail, by the payload object itself; a new event starts a new set."""

    __slots__ = ("_event_id", "_frames", "_payload", "_tail")

    def __init__(self, tail: FrameTail) -> None:
        self._tail = tail
        self._event_id = ""
        self._payload = b""
        self._frames: dict[bytes, bytes] = {}

    def get(self, head: bytes, event_id: str, payload: bytes) -> bytes:
        if payload is not self._payload or event_id != self._event_id:
            self._frames = {}
            self._event_id, self._payload = event_id, payload
        frame = self._frames.get(head)
        if frame is None:
            frame = self._frames[head] = head + self._tail.get(event_id, payload)
        return frame


# The tail of an untracked event, the same in both dialects: `,"data":<payload>}}`.
UNTRACKED_TAIL = FrameTail(lambda _eid, payload: b',"data":' + payload + b"}}")


@dataclass(frozen=True, slots=True)
class Tracked(Generic[T]):
    """An event with an id the client can resume from (`lastEventId`)."""

    id: str
    data: T


@dataclass(frozen=True, slots=True)
class RawJSON:
    """A value already encoded as JSON (shared by every subscriber; never re-encoded)."""

    json: bytes

    def value(self) -> object:
        return orjson.loads(self.json)


class EventSink(Protocol):
    """Where a push source delivers. Both calls are synchronous and must not block."""

    def event(self, event_id: str | None, payload: bytes) -> None: ...

    def end(self, error: RpcError | None = None) -> None: ...


class PushStream(AsyncIterator[Tracked[Any]]):
    """Base class for push sources.

    Contract: the source is live from construction (events committed after it exists are
    kept); `start(sink)` delivers any history first and then everything live, in order,
    until `close()`. Subclasses implement `_open(sink)` and `_close()`.

    Iterated directly, it yields `Tracked(id, RawJSON)`: the payload stays encoded. Its item
    type is `Tracked[Any]` so that a procedure annotated `AsyncIterator[Tracked[Event]]` can
    return it.
    """

    def __init__(self) -> None:
        self._sink: EventSink | None = None
        self._closed = False
        # Only used when consumed as an async iterator rather than through a sink.
        self._queue: deque[Tracked[RawJSON] | RpcError | None] | None = None
        self._wakeup: asyncio.Event | None = None

    async def start(self, sink: EventSink) -> None:
        self._sink = sink
        await self._open(sink)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._close()

    @property
    def closed(self) -> bool:
        return self._closed

    async def _open(self, sink: EventSink) -> None:
        raise NotImplementedError

    def _close(self) -> None:
        raise NotImplementedError

    # --- async-iterator view -------------------------------------------------------------

    def __aiter__(self) -> PushStream:
        return self

    async def __anext__(self) -> Tracked[Any]:
        if self._queue is None:
            self._queue = deque()
            self._wakeup = asyncio.Event()
            await self.start(_QueueSink(self._queue, self._wakeup))
        assert self._wakeup is not None
        while not self._queue:
            self._wakeup.clear()
            await self._wakeup.wait()
        item = self._queue.popleft()
        if item is None:
            raise StopAsyncIteration
        if isinstance(item, RpcError):
            raise item
        return item


class _QueueSink:
    def __init__(
        self, queue: deque[Tracked[RawJSON] | RpcError | None], wakeup: asyncio.Event
    ) -> None:
        self._queue = queue
        self._wakeup = wakeup

    def event(self, event_id: str | None, payload: bytes) -> None:
        self._queue.append(Tracked(event_id or "", RawJSON(payload)))
        self._wakeup.set()

    def end(self, error: RpcError | None = None) -> None:
        self._queue.append(error)
        self._wakeup.set()
