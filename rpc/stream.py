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
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

import orjson

from rpc.errors import RpcError

T = TypeVar("T")


_last_id: tuple[str, bytes] = ("", b'""')


def encoded_id(event_id: str) -> bytes:
    """An event id as JSON. Fan-out asks for the same id once per subscriber in a row, so the
    last one is kept rather than encoded again."""
    global _last_id
    if _last_id[0] != event_id:
        _last_id = (event_id, orjson.dumps(event_id))
    return _last_id[1]


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
