"""Coalesced, sliced writes of WebSocket frames: one write per socket per loop iteration."""

from __future__ import annotations

import asyncio
import time
import weakref
from collections import deque
from collections.abc import Callable
from typing import Protocol


class Flushable(Protocol):
    def flush(self) -> None: ...


# One slice of a flush writes connections for at most this long before it yields to the
# event loop, so that frame reads (the next alert's createAlert) and the store's replies run
# between slices instead of waiting for an event's whole fan-out.
FLUSH_SLICE_S = 0.002
_CLOCK_EVERY = 16  # connections written between two looks at the clock


class Flusher:
    """Writes each connection that got frames during this loop iteration, once: a burst of
    events costs one write per socket, and fan-out costs no task switch per subscriber.

    The writes of one flush are cut into slices of FLUSH_SLICE_S; the rest waits for the next
    loop iteration. Each connection's frames stay in order (they wait in its own list), and a
    connection marked again meanwhile is written once, with everything it got."""

    __slots__ = ("_clock", "_dirty", "_loop", "_scheduled", "_waiters", "_written", "slice_s")

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        clock: Callable[[], float] = time.perf_counter,
        slice_s: float = FLUSH_SLICE_S,
    ) -> None:
        self._loop = loop
        self._clock = clock
        self.slice_s = slice_s
        self._dirty: deque[Flushable] = deque()
        self._scheduled = False
        # Connections written since the start, and callbacks waiting for a count of them:
        # `_dirty` is first in, first out, so "everything marked so far is written" is "the
        # count has grown by the queue's present length". Nothing is counted per mark.
        self._written = 0
        self._waiters: deque[tuple[int, Callable[[], None]]] = deque()

    def when_flushed(self, callback: Callable[[], None]) -> None:
        """Call `callback` once every connection marked so far has been written: at once when
        none waits. (A connection that is slow writes through its own task instead; this
        covers the frames handed to the flusher.)"""
        if not self._dirty:
            callback()
        else:
            self._waiters.append((self._written + len(self._dirty), callback))

    def mark(self, out: Flushable) -> None:
        self._dirty.append(out)
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._scheduled = False
        dirty = self._dirty
        clock = self._clock
        deadline = clock() + self.slice_s
        written = 0
        while dirty:
            dirty.popleft().flush()
            written += 1
            if written % _CLOCK_EVERY == 0 and clock() >= deadline:
                break
        self._written += written
        waiters = self._waiters
        while waiters and waiters[0][0] <= self._written:
            waiters.popleft()[1]()
        if dirty and not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._flush)


_flushers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Flusher] = (
    weakref.WeakKeyDictionary()
)


def when_flushed(callback: Callable[[], None]) -> None:
    """`Flusher.when_flushed` of the running loop's flusher."""
    flusher().when_flushed(callback)


def flusher() -> Flusher:
    """The running loop's flusher."""
    loop = asyncio.get_running_loop()
    found = _flushers.get(loop)
    if found is None:
        found = _flushers[loop] = Flusher(loop)
    return found
