"""The listening socket's guard: what a TCP connection may hold before it is worth anything.

Each accepted connection is wrapped in `GuardedProtocol`, which stands between the event loop's
transport and aiohttp's request handler and forwards everything to it. The guard adds:

- a cap on HTTP connections (`MAX_HTTP_CONNECTIONS`): at the cap a new connection gets a 503
  and is closed at once, so a flood of idle sockets cannot run the process out of descriptors;
  a connection that becomes a WebSocket or an SSE stream leaves this pool (it is counted by the
  connection caps instead: see `ServerState.admission_error` and `AnonymousPool`);
- a header deadline (`HEADER_TIMEOUT_SECONDS`): a request's headers must arrive within it,
  counted from the accept or, on a kept-alive connection, from the first byte of the next
  request. A connection idle between requests is aiohttp's to close (`keepalive_timeout`);
- the security headers on the answers aiohttp writes by itself, to a request it cannot parse,
  before any route or middleware (and so the app's own headers) could run.

The wrapper uses only public asyncio protocol methods: the handler never knows it is wrapped.
Making the handler itself (a subclass, for its error answers) reads the arguments aiohttp's
`web.Server` keeps for its own handlers (`_kwargs`): a private attribute, pinned by the tests
of this module (an aiohttp that renames it fails them, not a request).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, cast

import orjson
from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from rpc.addresses import UNKNOWN
from rpc.client_errors import ClientErrorLog
from rpc.errors import ErrorCode, RpcError
from rpc.metrics import Metrics
from rpc.transport_aiohttp.listener import ThrottledListener, bind

log = logging.getLogger("alertwire.transport")

# Every response: nothing with patient data is cached anywhere on the way, no content
# sniffing, and no version for an attacker to look up (CONTRACT 5a).
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Server": "Alertwire",
}

_BODY = orjson.dumps(
    {"error": RpcError(ErrorCode.SERVICE_UNAVAILABLE, "Server is at capacity").to_dict("trpc")}
)
REFUSAL = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
    b"Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\n"
    b"Content-Length: " + str(len(_BODY)).encode() + b"\r\n\r\n" + _BODY
)

_IDLE, _HEADERS, _IN_REQUEST, _LONG_LIVED = range(4)
ACCEPT_BATCH = 4  # connections accepted per loop iteration


class ConnectionGuard:
    """The HTTP pool and the header deadline, shared by every connection of one server."""

    def __init__(
        self,
        max_http: int,
        header_timeout_s: float,
        metrics: Metrics,
        client_errors: ClientErrorLog | None = None,
    ) -> None:
        self.max_http = max_http
        self.header_timeout_s = header_timeout_s
        self.metrics = metrics
        self.client_errors = client_errors
        self.http_open = 0
        self._by_handler: dict[object, GuardedProtocol] = {}

    def factory(self, server: web.Server) -> Callable[[], GuardedProtocol]:
        return lambda: GuardedProtocol(self, server)

    def _of(self, request: web.Request) -> GuardedProtocol | None:
        return self._by_handler.get(request.protocol)

    def request_started(self, request: web.Request) -> None:
        """Its headers are in: the deadline no longer applies."""
        guarded = self._of(request)
        if guarded is not None and guarded.state != _LONG_LIVED:
            guarded.state = _IN_REQUEST
            guarded.cancel_deadline()

    def request_finished(self, request: web.Request) -> None:
        """The next bytes on this connection start the next request's deadline."""
        guarded = self._of(request)
        if guarded is not None and guarded.state == _IN_REQUEST:
            guarded.state = _IDLE

    def long_lived(self, request: web.Request) -> None:
        """The connection became a WebSocket or an SSE stream: out of the HTTP pool."""
        guarded = self._of(request)
        if guarded is not None and guarded.state != _LONG_LIVED:
            guarded.state = _LONG_LIVED
            guarded.cancel_deadline()
            self.http_open -= 1

    def report(self, kind: str, transport: asyncio.Transport, message: str) -> None:
        """The peer's address (a proxy's, if one is in front: no request has been read)."""
        if self.client_errors is None:
            return
        peer = transport.get_extra_info("peername")
        address = str(peer[0]) if isinstance(peer, tuple) and peer else UNKNOWN
        self.client_errors.report(kind, address, message)


class _RequestHandler(RequestHandler):
    """aiohttp's handler, except that its own error answers (a malformed request line or
    header: a 400 written before routing) carry SECURITY_HEADERS instead of aiohttp's
    `Server: Python/<version> aiohttp/<version>`."""

    __slots__ = ()

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        response = super().handle_error(request, status, exc, message)
        response.headers.update(SECURITY_HEADERS)
        return response


class GuardedProtocol(asyncio.Protocol):
    """Forwards to aiohttp's RequestHandler, created only once the connection is admitted."""

    def __init__(self, guard: ConnectionGuard, server: web.Server) -> None:
        self._guard = guard
        self._server = server
        self._inner: Any = None  # aiohttp's RequestHandler
        self._transport: asyncio.Transport | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self.state = _HEADERS

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        guard = self._guard
        self._transport = cast(asyncio.Transport, transport)
        if guard.max_http and guard.http_open >= guard.max_http:
            guard.metrics.connections_refused.inc("http_capacity")
            guard.report("capacity", self._transport, "connection refused at MAX_HTTP_CONNECTIONS")
            self._transport.write(REFUSAL)
            self._transport.close()
            return
        guard.http_open += 1
        # As web.Server() makes its handlers (same arguments), with the error answers fixed.
        server = self._server
        self._inner = _RequestHandler(server, loop=asyncio.get_running_loop(), **server._kwargs)
        guard._by_handler[self._inner] = self
        self._start_deadline()
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self._inner is None:
            return
        if self.state == _IDLE:  # the first byte of the next request on a kept-alive socket
            self.state = _HEADERS
            self._start_deadline()
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        if self._inner is None:
            return None
        result: bool | None = self._inner.eof_received()
        return result

    def connection_lost(self, exc: Exception | None) -> None:
        self.cancel_deadline()
        inner, self._inner = self._inner, None
        if inner is None:
            return
        guard = self._guard
        guard._by_handler.pop(inner, None)
        if self.state != _LONG_LIVED:
            guard.http_open -= 1
        inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()

    def _start_deadline(self) -> None:
        timeout = self._guard.header_timeout_s
        if timeout > 0:
            self.cancel_deadline()
            loop = asyncio.get_running_loop()
            self._deadline = loop.call_later(timeout, self._headers_overdue)

    def cancel_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _headers_overdue(self) -> None:
        self._deadline = None
        if self.state != _HEADERS or self._transport is None:
            return
        self._guard.metrics.http_timeouts.inc("headers")
        self._guard.report("timeout", self._transport, "request headers did not arrive in time")
        self._transport.abort()


class GuardedSite(web.BaseSite):
    """A TCP listener whose connections go through the guard (aiohttp's TCPSite, guarded)."""

    def __init__(
        self,
        runner: web.BaseRunner,
        guard: ConnectionGuard,
        host: str,
        port: int,
        *,
        backlog: int = 128,
        reuse_address: bool = True,
    ) -> None:
        super().__init__(runner, backlog=backlog)
        self._guard = guard
        self._host = host
        self._port = port
        self._reuse_address = reuse_address

    @property
    def name(self) -> str:
        return f"http://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None
        # A few accepts per loop iteration on either loop (listener.py): a burst of
        # handshakes must not run all at once ahead of everything else.
        listener = ThrottledListener(
            asyncio.get_running_loop(),
            bind(self._host, self._port, reuse_address=self._reuse_address),
            self._guard.factory(server),
            batch=ACCEPT_BATCH,
            backlog=self._backlog,
        )
        await listener.start_serving()
        self._server = listener
