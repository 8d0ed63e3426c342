"""A subscriber's queue of events that the services push synchronously (from a cluster message
or a connection change) and the subscription reads at its own pace.

Presence and viewer events describe a state: a subscriber that falls FEED_LIMIT events behind
loses the queued ones and gets a fresh snapshot instead, which says everything they said. That
bounds the memory a slow subscriber can hold without ending its subscription.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Generic, TypeVar

T = TypeVar("T")

FEED_LIMIT = 1000


class Feed(Generic[T]):
    def __init__(self, snapshot: Callable[[], T], limit: int = FEED_LIMIT) -> None:
        self._snapshot = snapshot
        self._limit = limit
        self._queue: deque[T] = deque()
        self._wake = asyncio.Event()
        self._stale = True  # the first item is a snapshot

    def push(self, item: T) -> None:
        if self._stale:
            return  # the snapshot still to come will say it
        if len(self._queue) >= self._limit:
            self._queue.clear()
            self._stale = True
        else:
            self._queue.append(item)
        self._wake.set()

    def __len__(self) -> int:
        return len(self._queue)

    async def items(self) -> AsyncIterator[T]:
        """The snapshot first (taken when it is read, so that it is current), then each
        pushed item in order; a snapshot again after an overflow."""
        while True:
            if self._stale:
                self._stale = False
                self._queue.clear()
                yield self._snapshot()
                continue
            if self._queue:
                yield self._queue.popleft()
                continue
            self._wake.clear()
            await self._wake.wait()
