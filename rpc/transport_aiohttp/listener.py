"""A listening socket that accepts a few connections per event-loop iteration, on any loop.

Both asyncio's loop and uvloop accept every waiting connection in one go when the listening
socket is readable (uvloop: libuv drains the whole queue; asyncio: up to its `backlog`). A
burst of a thousand upgrade requests (a reconnect storm, or a flood without tokens) then has
its thousand handshakes read and answered in the next iteration, and every other connection's
frames, the store's replies and `/health` wait behind them. Accepting `batch` per readiness
callback instead spreads the burst: the socket stays readable, so the loop comes back to it on
every iteration, after everything else that was ready. The kernel keeps the rest in its listen
queue (`backlog`, deep, so a mass reconnect is queued rather than refused).

Only public loop methods are used: `add_reader` on the listening socket, and
`connect_accepted_socket` for each accepted one, so the protocol and its transport are the
loop's own (TCP_NODELAY and all).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable

log = logging.getLogger("alertwire.transport")


class ThrottledListener(asyncio.AbstractServer):
    """Serves `protocol_factory` on a bound socket, `batch` accepts per loop iteration."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        sock: socket.socket,
        protocol_factory: Callable[[], asyncio.Protocol],
        *,
        batch: int,
        backlog: int,
    ) -> None:
        if batch < 1:
            raise ValueError("batch must be at least 1")
        self._loop = loop
        self._sock = sock
        self._factory = protocol_factory
        self._batch = batch
        self._backlog = backlog
        self._serving = False
        self._pending: set[asyncio.Task[None]] = set()
        self._closed = asyncio.Event()

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        return () if self._sock.fileno() < 0 else (self._sock,)

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def is_serving(self) -> bool:
        return self._serving

    async def start_serving(self) -> None:
        if self._serving:
            return
        self._sock.setblocking(False)
        self._sock.listen(self._backlog)
        self._loop.add_reader(self._sock.fileno(), self._on_readable)
        self._serving = True

    async def serve_forever(self) -> None:
        await self.start_serving()
        await self._closed.wait()

    def close(self) -> None:
        if self._sock.fileno() >= 0:
            if self._serving:
                self._loop.remove_reader(self._sock.fileno())
            self._sock.close()
        self._serving = False
        self._closed.set()

    async def wait_closed(self) -> None:
        await self._closed.wait()
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)

    def _on_readable(self) -> None:
        for _ in range(self._batch):
            try:
                conn, _address = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                # Out of descriptors (EMFILE/ENFILE) or a connection reset before it was
                # taken: the listener itself is fine. Leave the rest queued in the kernel
                # for the next iteration rather than spinning on the error now.
                log.warning("accept failed: %s", exc.strerror or type(exc).__name__)
                return
            conn.setblocking(False)
            task = self._loop.create_task(self._connect(conn))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

    async def _connect(self, conn: socket.socket) -> None:
        try:
            await self._loop.connect_accepted_socket(self._factory, sock=conn)
        except Exception as exc:  # the peer went away between accept and set-up
            log.debug("accepted connection dropped before set-up: %s", type(exc).__name__)
            conn.close()


def bind(host: str, port: int, *, reuse_address: bool = True) -> socket.socket:
    """A bound, not yet listening, non-blocking TCP socket for `host:port`."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        if reuse_address:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock
