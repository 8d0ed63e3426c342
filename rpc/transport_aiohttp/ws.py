"""WS /api/trpc: the handshake checks, then bytes in and out of a Session."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import orjson
from aiohttp import WebSocketError, WSMsgType, web

from rpc.context import Principal
from rpc.errors import ErrorCode, RpcError
from rpc.limits import AnonymousPlace
from rpc.session import Session
from rpc.transport_aiohttp.outbound import WsOutbound
from rpc.transport_aiohttp.state import STATE_KEY, ServerState

log = logging.getLogger("alertwire.transport")

CLOSE_TOO_BIG = 1009
CLOSE_TRY_AGAIN_LATER = 1013
CLOSE_INVALID_TEXT = 1007
# aiohttp stops reading at a frame header beyond its own limit, so the client may never see
# the close. We let it read frames up to this multiple of MAX_MESSAGE_BYTES in full and close
# with 1009 ourselves; only beyond it does aiohttp cut the connection short.
HARD_CAP_FACTOR = 8
# A connection that ends while pipelined calls still run lets them finish (a mutation that was
# sent is carried out, as it would be had the socket stayed) for up to this long.
CALLS_GRACE_S = 10.0


def _refuse(error: RpcError, status: int | None = None) -> web.Response:
    """A refused upgrade: the error, then the connection closes (as RFC 6455 servers commonly
    do), so a flood of refused handshakes holds no keep-alive connections open."""
    body = orjson.dumps({"error": error.to_dict("trpc")})
    response = web.Response(
        status=status or error.code.http_status, body=body, content_type="application/json"
    )
    response.force_close()
    return response


class WsConnection:
    """One accepted WebSocket: its Session, its outbound queue and its liveness."""

    def __init__(
        self,
        request: web.Request,
        ws: web.WebSocketResponse,
        state: ServerState,
        anonymous: AnonymousPlace | None,
    ):
        self.request = request
        self.ws = ws
        self.state = state
        self.out = WsOutbound(request, ws, state.limits, state.metrics, state.budget)
        self.last_seen = time.monotonic()
        self.last_ping = 0.0
        # Its place in the anonymous pool until it authenticates; taken back (the socket
        # closed, 1013) when the pool is full and this is its oldest.
        self.anonymous = anonymous
        if anonymous is not None:
            anonymous.evict = self._evicted

    def admit(self, principal: Principal) -> None:
        """The socket authenticates: it needs a place among authenticated connections
        (raises RpcError when there is none) and gives up its anonymous one."""
        refusal = self.state.admission_error(principal)
        if refusal is not None:
            raise refusal
        self.leave_anonymous_pool()

    def leave_anonymous_pool(self) -> None:
        if self.anonymous is not None:
            self.state.anonymous.release(self.anonymous)
            self.anonymous = None

    def _evicted(self) -> None:
        self.anonymous = None
        self.close(CLOSE_TRY_AGAIN_LATER, "Too many unauthenticated connections")

    @property
    def send(self) -> Callable[[bytes], None]:
        """The outbound queue's own `send`: fan-out calls it once per subscriber."""
        return self.out.send

    def close(self, code: int, reason: str) -> None:
        self.out.close(code, reason)


async def handle_ws(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    metrics = state.metrics
    if state.shutting_down or not state.ready:
        metrics.connections_refused.inc("shutting_down")
        return _refuse(RpcError(ErrorCode.SERVICE_UNAVAILABLE, "Server is restarting"), 503)
    if not state.origins.permits(request.headers.get("Origin"), request.host):
        metrics.connections_refused.inc("origin")
        state.refused(request, "origin", "WebSocket upgrade from an origin not allowed")
        return _refuse(RpcError(ErrorCode.FORBIDDEN, "Origin not allowed"))
    principal, auth_error = state.principal_from(request)
    if auth_error is not None:  # a token was presented and refused: no upgrade (CONTRACT 5)
        metrics.connections_refused.inc("auth")
        return _refuse(auth_error)
    refusal = state.admission_error(principal)
    if refusal is not None:
        state.refused(request, "capacity", "WebSocket upgrade refused by a connection cap")
        return _refuse(refusal)
    place: AnonymousPlace | None = None
    if principal is None:
        admitted = state.anonymous.admit(state.client_address(request))
        if isinstance(admitted, str):
            metrics.connections_refused.inc(admitted)
            state.refused(request, "capacity", "too many unauthenticated WebSockets")
            return _refuse(
                RpcError(ErrorCode.SERVICE_UNAVAILABLE, "Too many unauthenticated connections"),
                503,
            )
        place = admitted
    try:
        return await _serve(request, state, principal, place)
    finally:
        if place is not None and CONN_KEY not in request:
            state.anonymous.release(place)  # never became a connection


async def _serve(
    request: web.Request,
    state: ServerState,
    principal: Principal | None,
    place: AnonymousPlace | None,
) -> web.StreamResponse:
    limits = state.limits
    metrics = state.metrics
    ws = web.WebSocketResponse(
        autoping=False,
        heartbeat=None,
        compress=False,
        max_msg_size=limits.max_message_bytes * HARD_CAP_FACTOR,
    )
    if not ws.can_prepare(request).ok:
        return _refuse(RpcError(ErrorCode.BAD_REQUEST, "Expected a WebSocket upgrade"), 426)
    await ws.prepare(request)
    state.guard.long_lived(request)
    conn = WsConnection(request, ws, state, place)
    if place is not None and place.evicted:  # taken back during the handshake
        conn.close(CLOSE_TRY_AGAIN_LATER, "Too many unauthenticated connections")
    request[CONN_KEY] = conn
    session = Session(
        state.dispatcher,
        conn,
        auth=state.auth,
        limits=limits,
        registry=state.registry,
        principal=principal,
        metrics=metrics,
        admit=conn.admit,
        refused=state.reporter(request),
        revocations=state.revocations,
    )
    state.sessions.add(session)
    metrics.connections_open.inc("ws")
    try:
        await _read_loop(conn, session)
    finally:
        metrics.connections_open.dec("ws")
        conn.leave_anonymous_pool()
        state.sessions.discard(session)
        session.shutdown()
        await session.settle(CALLS_GRACE_S)
        await conn.out.stop()
    return ws


CONN_KEY = web.RequestKey("alertwire_ws", WsConnection)


async def _read_loop(conn: WsConnection, session: Session) -> None:
    ws = conn.ws
    metrics = session.metrics
    while not session.closed:
        msg = await ws.receive()
        conn.last_seen = time.monotonic()
        kind = msg.type
        # Until the socket has authenticated, its frames are held to the small limit.
        limit = session.limits.message_limit(session.principal is not None)
        if kind is WSMsgType.TEXT:
            text: str = msg.data
            if len(text) > limit or (len(text) * 4 > limit and len(text.encode()) > limit):
                metrics.oversize_messages.inc("ws")
                session.refused("too_large", "WebSocket frame over the limit")
                conn.close(CLOSE_TOO_BIG, "Message too big")
                return
            await session.receive(text)
        elif kind is WSMsgType.BINARY:
            if len(msg.data) > limit:
                metrics.oversize_messages.inc("ws")
                session.refused("too_large", "WebSocket frame over the limit")
                conn.close(CLOSE_TOO_BIG, "Message too big")
                return
            session.receive_binary()
        elif kind is WSMsgType.PING:
            await ws.pong(msg.data)
        elif kind is WSMsgType.PONG:
            continue
        else:  # CLOSE, CLOSING, CLOSED, ERROR
            if kind is WSMsgType.ERROR:
                _protocol_error(msg.data, session)
            return


def _protocol_error(error: object, session: Session) -> None:
    """aiohttp already answered with a close frame; count what it was."""
    code = error.code if isinstance(error, WebSocketError) else None
    if code == CLOSE_TOO_BIG:  # beyond HARD_CAP_FACTOR times the limit
        session.metrics.oversize_messages.inc("ws")
    elif code == CLOSE_INVALID_TEXT:
        session.metrics.bad_frames.inc("invalid_utf8")
    session.refused("bad_frame", f"WebSocket protocol error (close code {code})")
