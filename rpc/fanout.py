"""Delivering one stream's events to its subscribers in slices, in order.

Handing an event to a thousand subscribers is a thousand synchronous calls. Done in one piece,
it holds the event loop for milliseconds, and the next alert's frame, the store's reply to a
commit and every other call wait behind it. `SlicedFanout` delivers for at most `slice_s` at a
time and carries on at the next loop iteration, so that other work runs in between.

What does not change: every subscriber gets every event exactly once and in order. Events wait
in one queue per stream; each is delivered to the subscribers it had when its delivery began
(later subscribers are not live for it: they get it from replay, as before), and the next event
starts only once the previous one reached all of its subscribers.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

E = TypeVar("E")
S = TypeVar("S")

SLICE_S = 0.002
_CLOCK_EVERY = 32  # deliveries between two looks at the clock


class SlicedFanout(Generic[E, S]):
    """`publish(event)` delivers `deliver(subscriber, event)` to each of `audience(event)`;
    then `done(event)`, when given, once the event has reached an audience of one or more."""

    __slots__ = (
        "_audience",
        "_busy",
        "_clock",
        "_cursor",
        "_deliver",
        "_done",
        "_queue",
        "slice_s",
    )

    def __init__(
        self,
        audience: Callable[[E], Sequence[S]],
        deliver: Callable[[S, E], None],
        clock: Callable[[], float] = time.perf_counter,
        slice_s: float = SLICE_S,
        done: Callable[[E], None] | None = None,
    ) -> None:
        self._audience = audience
        self._deliver = deliver
        self._done = done
        self._clock = clock
        self.slice_s = slice_s
        self._queue: deque[E] = deque()
        self._cursor: tuple[Sequence[S], int] | None = None  # the event being delivered
        self._busy = False  # a continuation is scheduled

    @property
    def pending(self) -> int:
        """Events not yet delivered to all of their subscribers."""
        return len(self._queue)

    def publish(self, event: E) -> None:
        self._queue.append(event)
        if not self._busy:  # else the delivery under way (or scheduled) takes it in turn
            self._run()

    def _run(self) -> None:
        self._busy = True
        try:
            asyncio.get_running_loop()
            deadline = self._clock() + self.slice_s
        except RuntimeError:  # no loop to yield to (a synchronous caller): one piece
            deadline = float("inf")
        queue, deliver = self._queue, self._deliver
        while queue:
            event = queue[0]
            audience, start = self._cursor or (self._audience(event), 0)
            for index in range(start, len(audience)):
                deliver(audience[index], event)
                done = index + 1
                if done % _CLOCK_EVERY == 0 and done < len(audience) and self._late(deadline):
                    self._cursor = (audience, done)
                    asyncio.get_running_loop().call_soon(self._run)
                    return
            self._cursor = None
            queue.popleft()
            if self._done is not None and audience:
                self._done(event)
            if queue and self._late(deadline):
                asyncio.get_running_loop().call_soon(self._run)
                return
        self._busy = False

    def _late(self, deadline: float) -> bool:
        return self._clock() >= deadline
