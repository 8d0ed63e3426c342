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

    __slots__ = ("_clock", "_dirty", "_loop", "_scheduled", "slice_s")

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
        if dirty and not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._flush)


_flushers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Flusher] = (
    weakref.WeakKeyDictionary()
)


def flusher() -> Flusher:
    """The running loop's flusher."""
    loop = asyncio.get_running_loop()
    found = _flushers.get(loop)
    if found is None:
        found = _flushers[loop] = Flusher(loop)
    return found
