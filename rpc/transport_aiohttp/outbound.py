"""A bounded per-connection send queue drained by one writer task.

`send` is synchronous and O(1) so that fan-out never awaits per subscriber. A client that
stops reading fills its queue; past the bound the connection is closed (WebSocket 4008) and the
client resumes later through replay. A close that cannot be flushed within a grace period
aborts the socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque

from aiohttp import WSMsgType, web

from rpc.limits import Limits

log = logging.getLogger("alertwire.transport")

CLOSE_GRACE_S = 2.0
CLOSE_SLOW_CONSUMER = 4008


class Outbound:
    """Base: subclasses implement `_write_many` and `_finish`."""

    def __init__(self, request: web.Request, limits: Limits) -> None:
        self._request = request
        self._limit_frames = limits.send_queue_frames
        self._limit_bytes = limits.send_queue_bytes
        self._queue: deque[bytes] = deque()
        self._queued_bytes = 0
        self._wakeup = asyncio.Event()
        self._closing: tuple[int, str] | None = None
        self.finished = asyncio.Event()
        self.overflowed = False
        self._task = asyncio.create_task(self._run(), name="outbound")

    @property
    def closing(self) -> bool:
        return self._closing is not None

    def send(self, frame: bytes) -> None:
        if self._closing is not None:
            return
        self._queue.append(frame)
        self._queued_bytes += len(frame)
        if len(self._queue) > self._limit_frames or self._queued_bytes > self._limit_bytes:
            self.overflowed = True
            self._queue.clear()
            self._queued_bytes = 0
            self.close(CLOSE_SLOW_CONSUMER, "Send queue full; reconnect and resume")
            return
        self._wakeup.set()

    def close(self, code: int, reason: str) -> None:
        if self._closing is None:
            self._closing = (code, reason)
            self._wakeup.set()

    async def _run(self) -> None:
        try:
            while True:
                while self._queue:
                    batch = list(self._queue)
                    self._queue.clear()
                    self._queued_bytes = 0
                    await self._write_many(batch)
                if self._closing is not None:
                    break
                self._wakeup.clear()
                await self._wakeup.wait()
            code, reason = self._closing
            await asyncio.wait_for(self._finish(code, reason), CLOSE_GRACE_S)
        except (ConnectionError, RuntimeError, TimeoutError):
            self.abort()
        finally:
            self._closing = self._closing or (1006, "")
            self.finished.set()

    def abort(self) -> None:
        transport = self._request.transport
        if transport is not None:
            transport.abort()

    async def stop(self, grace_s: float = CLOSE_GRACE_S) -> None:
        """Close (if not yet), let the writer flush what is queued, then make sure it ended."""
        self.close(1000, "")
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(self.finished.wait()), grace_s)
        if not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _write_many(self, frames: list[bytes]) -> None:
        raise NotImplementedError

    async def _finish(self, code: int, reason: str) -> None:
        raise NotImplementedError


class WsOutbound(Outbound):
    def __init__(self, request: web.Request, ws: web.WebSocketResponse, limits: Limits) -> None:
        self.ws = ws
        super().__init__(request, limits)

    async def _write_many(self, frames: list[bytes]) -> None:
        send = self.ws.send_frame
        for frame in frames:
            await send(frame, WSMsgType.TEXT)

    async def _finish(self, code: int, reason: str) -> None:
        await self.ws.close(code=code, message=reason.encode()[:120])


class SseOutbound(Outbound):
    def __init__(self, request: web.Request, response: web.StreamResponse, limits: Limits) -> None:
        self.response = response
        super().__init__(request, limits)

    async def _write_many(self, frames: list[bytes]) -> None:
        await self.response.write(b"".join(frames))

    async def _finish(self, code: int, reason: str) -> None:
        await self.response.write_eof()
