"""A bounded per-connection send queue drained by one writer task.

`send` is synchronous and O(1) so that fan-out never awaits per subscriber. A client that
stops reading fills its queue; past the bound the connection is closed (WebSocket 4008) and the
client resumes later through replay. A close that cannot be flushed within a grace period
aborts the socket: a client that never reads cannot hold a closing connection (and the
buffers behind it) open.

Every connection's backlog (its queue and what its transport still holds) is also charged to
one `OutboundBudget` per server, so that many slow readers together cannot take more than
SEND_QUEUE_TOTAL_BYTES: past it, the connections furthest behind are closed first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable

from aiohttp import web

from rpc.limits import Limits
from rpc.metrics import Metrics
from rpc.transport_aiohttp.budget import OutboundBudget
from rpc.transport_aiohttp.flush import flusher

log = logging.getLogger("alertwire.transport")

CLOSE_GRACE_S = 2.0
CLOSE_SLOW_CONSUMER = 4008


class Flag:
    """`asyncio.Event`'s set/clear/wait without its per-instance deque of waiters: every
    connection holds two of these for its whole life, idle or not. One future, made when
    someone waits, is shared by every waiter; each waits through a shield, so a waiter that
    is cancelled (a timeout) does not cancel the others' wait."""

    __slots__ = ("_future", "_set")

    def __init__(self) -> None:
        self._set = False
        self._future: asyncio.Future[None] | None = None

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        self._set = True
        future = self._future
        if future is not None:
            self._future = None
            if not future.done():
                future.set_result(None)

    def clear(self) -> None:
        self._set = False

    async def wait(self) -> None:
        if self._set:
            return
        future = self._future
        if future is None:
            future = self._future = asyncio.get_running_loop().create_future()
        await asyncio.shield(future)


class Outbound:
    """Base: subclasses implement `_write_many` and `_finish`."""

    def __init__(
        self,
        request: web.Request,
        limits: Limits,
        metrics: Metrics,
        budget: OutboundBudget | None = None,
    ) -> None:
        self._request = request
        self._metrics = metrics
        self._budget = budget or OutboundBudget(limits.send_queue_total_bytes, metrics)
        self._budget.join(self)
        self.charged = 0  # this connection's share of the budget, as last measured
        self._limit_frames = limits.send_queue_frames
        self._limit_bytes = limits.send_queue_bytes
        self._queue: deque[bytes] | None = None  # made on first use: most never need one
        self._queued_bytes = 0
        self._wakeup = Flag()
        self._closing: tuple[int, str] | None = None
        self._give_up: asyncio.TimerHandle | None = None
        self.finished = Flag()
        self.on_finished: Callable[[], None] | None = None
        self.overflowed = False
        self._task: asyncio.Task[None] | None = None
        if self.EAGER_WRITER:
            self._start_writer()

    # Whether the writer task runs from the start (SSE: every write goes through it) or only
    # once it has work (WebSocket: frames are written directly until the socket is slow).
    EAGER_WRITER = True

    def _start_writer(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="outbound")

    @property
    def closing(self) -> bool:
        return self._closing is not None

    def send(self, frame: bytes) -> None:
        if self._closing is not None:
            return
        queue = self._queue
        if queue is None:
            queue = self._queue = deque()
        queue.append(frame)
        self._queued_bytes += len(frame)
        if len(queue) > self._limit_frames or self._queued_bytes > self._limit_bytes:
            self._metrics.slow_consumer_closes.inc()
            self.overflow()
            return
        self._charge(self.charged + len(frame))
        self._wakeup.set()

    def backlog(self) -> int:
        """Bytes this connection has not yet handed to the kernel: its queue and its
        transport's buffer."""
        transport = self._request.transport
        buffered = transport.get_write_buffer_size() if transport is not None else 0
        return self._queued_bytes + buffered

    def _charge(self, amount: int) -> None:
        budget = self._budget
        budget.charged += amount - self.charged
        self.charged = amount
        if budget.charged > budget.limit and not budget.shedding:
            budget.shed()

    def overflow(self) -> None:
        """Too far behind: drop what is queued and close (4008); the client resumes by
        `lastEventId`."""
        self.overflowed = True
        self._queue = None
        self._queued_bytes = 0
        self._charge(0)
        self.close(CLOSE_SLOW_CONSUMER, "Send queue full; reconnect and resume")

    def close(self, code: int, reason: str) -> None:
        if self._closing is None:
            self._closing = (code, reason)
            self._start_writer()
            self._wakeup.set()
            # The writer may be waiting for a socket the client no longer reads: bound the
            # whole close (flush, close frame) rather than only its last step.
            loop = asyncio.get_running_loop()
            self._give_up = loop.call_later(CLOSE_GRACE_S, self._close_overdue)

    def _close_overdue(self) -> None:
        self._give_up = None
        if not self.finished.is_set():
            log.info("aborting a connection that did not take its close in %.0f s", CLOSE_GRACE_S)
            self.abort()

    def _finished(self) -> None:
        """The writer ended (closed, aborted or cancelled)."""
        self._closing = self._closing or (1006, "")
        self._queue = None
        self._queued_bytes = 0
        self._charge(0)
        self._budget.leave(self)
        if self.on_finished is not None:
            self.on_finished()
        if self._give_up is not None:
            self._give_up.cancel()
            self._give_up = None
        self.finished.set()

    async def _run(self) -> None:
        try:
            while True:
                while self._queue:
                    batch = list(self._queue)
                    self._queue = None
                    self._queued_bytes = 0
                    await self._write_many(batch)
                    self._charge(self.backlog())
                if self._closing is not None:
                    break
                self._wakeup.clear()
                await self._wakeup.wait()
            code, reason = self._closing
            await asyncio.wait_for(self._finish(code, reason), CLOSE_GRACE_S)
        except (ConnectionError, RuntimeError, TimeoutError):
            self.abort()
        finally:
            self._finished()

    def abort(self) -> None:
        transport = self._request.transport
        if transport is not None:
            transport.abort()

    async def stop(self, grace_s: float = CLOSE_GRACE_S) -> None:
        """Close (if not yet), let the writer flush what is queued, then make sure it ended."""
        self.close(1000, "")
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(self.finished.wait()), grace_s)
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _write_many(self, frames: list[bytes]) -> None:
        raise NotImplementedError

    async def _finish(self, code: int, reason: str) -> None:
        raise NotImplementedError


# Above this much data waiting in the kernel-side transport buffer, stop writing directly
# and let the writer task wait for the socket to drain (frames then queue, bounded).
HIGH_WATER_BYTES = 256 * 1024


def frame_header(size: int) -> bytes:
    """Header of an unmasked, uncompressed, final text frame (RFC 6455 section 5.2)."""
    header = _HEADERS.get(size)
    if header is None:
        if size < 65536:
            header = _HEADERS[size] = b"\x81\x7e" + size.to_bytes(2, "big")
        else:
            header = b"\x81\x7f" + size.to_bytes(8, "big")
    return header


# Headers of every size up to 64 KiB once built (a few bytes each, at most 64 Ki of them): fan-out
# asks for the same size once per subscriber.
_HEADERS: dict[int, bytes] = {n: bytes((0x81, n)) for n in range(126)}


class WsOutbound(Outbound):
    """WebSocket frames written straight to the transport, coalesced per loop iteration.

    aiohttp's own writer also writes whole frames synchronously (pong, ping, close), so the
    two never interleave inside a frame. Only when the socket is slow does the writer task
    take over: it waits for the transport to drain and writes the queue in order. That task
    starts only then (or at the close): an idle connection holds none.
    """

    EAGER_WRITER = False

    def __init__(
        self,
        request: web.Request,
        ws: web.WebSocketResponse,
        limits: Limits,
        metrics: Metrics,
        budget: OutboundBudget | None = None,
    ) -> None:
        self.ws = ws
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._marked = False
        self._blocked = False  # the socket is slow: frames go through the queue
        self._flush_soon = flusher()
        # Kept: the request's property costs a lookup per flush; a lost connection's
        # transport reports is_closing().
        self._transport = request.transport
        super().__init__(request, limits, metrics, budget)

    def send(self, frame: bytes) -> None:
        if self._closing is not None:
            return
        if self._blocked:
            super().send(frame)
            return
        self._pending.append(frame_header(len(frame)))
        self._pending.append(frame)
        self._pending_bytes += len(frame)
        if not self._marked:
            self._marked = True
            self._flush_soon.mark(self)

    def close(self, code: int, reason: str) -> None:
        self.flush()  # what was sent before the close goes out before it
        super().close(code, reason)

    def flush(self) -> None:
        self._marked = False
        if not self._pending:
            return
        data = b"".join(self._pending)
        self._pending.clear()
        self._pending_bytes = 0
        transport = self._transport
        if transport is None or transport.is_closing():
            return  # the connection is gone; the read loop ends the session
        transport.write(data)
        buffered = transport.get_write_buffer_size()
        if buffered != self.charged:
            self._charge(buffered)
        if buffered > HIGH_WATER_BYTES and not self._blocked:
            self._blocked = True
            self._start_writer()
            self._wakeup.set()

    async def _run(self) -> None:
        try:
            while True:
                if self._blocked:
                    await self._drain_queue()
                if self._closing is not None:
                    break
                self._wakeup.clear()
                await self._wakeup.wait()
            code, reason = self._closing
            await asyncio.wait_for(self._finish(code, reason), CLOSE_GRACE_S)
        except (ConnectionError, RuntimeError, TimeoutError):
            self.abort()
        finally:
            self._finished()

    def backlog(self) -> int:
        return super().backlog() + self._pending_bytes

    async def _drain_queue(self) -> None:
        """Wait for the socket, then write what queued meanwhile, until nothing is left."""
        protocol = self._request.protocol
        while True:
            await protocol._drain_helper()  # returns at once unless the transport paused us
            if not self._queue:
                break
            batch = list(self._queue)
            self._queue = None
            self._queued_bytes = 0
            transport = self._request.transport
            if transport is None or transport.is_closing():
                raise ConnectionError("connection lost")
            transport.write(b"".join(frame_header(len(f)) + f for f in batch))
            self._charge(self.backlog())
        self._blocked = False

    async def _finish(self, code: int, reason: str) -> None:
        await self.ws.close(code=code, message=reason.encode()[:120])


class SseOutbound(Outbound):
    """An SSE stream's writer. aiohttp's `write` waits while the socket does not drain; a
    stream stuck there for `sse_stall_timeout_s` is a client that stopped reading: it is
    aborted, which ends the stream and frees its connection slots."""

    def __init__(
        self,
        request: web.Request,
        response: web.StreamResponse,
        limits: Limits,
        metrics: Metrics,
        budget: OutboundBudget | None = None,
    ) -> None:
        self.response = response
        self._stall_s = limits.sse_stall_timeout_s
        super().__init__(request, limits, metrics, budget)

    async def _write_many(self, frames: list[bytes]) -> None:
        try:
            await asyncio.wait_for(self.response.write(b"".join(frames)), self._stall_s)
        except TimeoutError:
            self._metrics.sse_stalls.inc()
            raise

    async def _finish(self, code: int, reason: str) -> None:
        await self.response.write_eof()
