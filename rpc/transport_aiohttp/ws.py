"""WS /api/trpc: the handshake checks, then bytes in and out of a Session."""

from __future__ import annotations

import logging
import time

import orjson
from aiohttp import WSMsgType, web

from rpc.errors import ErrorCode, RpcError
from rpc.session import Session
from rpc.transport_aiohttp.outbound import WsOutbound
from rpc.transport_aiohttp.state import STATE_KEY, ServerState

log = logging.getLogger("alertwire.transport")

CLOSE_TOO_BIG = 1009
# aiohttp stops reading at a frame header beyond its own limit, so the client may never see
# the close. We let it read frames up to this multiple of MAX_MESSAGE_BYTES in full and close
# with 1009 ourselves; only beyond it does aiohttp cut the connection short.
HARD_CAP_FACTOR = 8


def _refuse(error: RpcError, status: int | None = None) -> web.Response:
    body = orjson.dumps({"error": error.to_dict("trpc")})
    return web.Response(
        status=status or error.code.http_status, body=body, content_type="application/json"
    )


class WsConnection:
    """One accepted WebSocket: its Session, its outbound queue and its liveness."""

    def __init__(self, request: web.Request, ws: web.WebSocketResponse, state: ServerState):
        self.request = request
        self.ws = ws
        self.state = state
        self.out = WsOutbound(request, ws, state.limits)
        self.last_seen = time.monotonic()
        self.last_ping = 0.0

    def send(self, frame: bytes) -> None:
        self.out.send(frame)

    def close(self, code: int, reason: str) -> None:
        self.out.close(code, reason)


async def handle_ws(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    if state.shutting_down or not state.ready:
        return _refuse(RpcError(ErrorCode.SERVICE_UNAVAILABLE, "Server is restarting"), 503)
    if not state.origins.permits(request.headers.get("Origin"), request.host):
        return _refuse(RpcError(ErrorCode.FORBIDDEN, "Origin not allowed"))
    principal, auth_error = state.principal_from(request)
    if auth_error is not None:
        return _refuse(auth_error)
    limits = state.limits
    if limits.max_connections and len(state.sessions) >= limits.max_connections:
        return _refuse(RpcError(ErrorCode.SERVICE_UNAVAILABLE, "Server is at capacity"), 503)
    cap = limits.max_connections_per_user
    if principal is not None and cap and state.registry.connections_of(principal.sub) >= cap:
        return _refuse(
            RpcError(
                ErrorCode.TOO_MANY_REQUESTS,
                f"Too many connections for this user (limit {cap}); close one first",
            )
        )
    ws = web.WebSocketResponse(
        autoping=False,
        heartbeat=None,
        compress=False,
        max_msg_size=limits.max_message_bytes * HARD_CAP_FACTOR,
    )
    if not ws.can_prepare(request).ok:
        return _refuse(RpcError(ErrorCode.BAD_REQUEST, "Expected a WebSocket upgrade"), 426)
    await ws.prepare(request)
    conn = WsConnection(request, ws, state)
    session = Session(
        state.dispatcher,
        conn,
        auth=state.auth,
        limits=limits,
        registry=state.registry,
        principal=principal,
    )
    state.sessions.add(session)
    request[CONN_KEY] = conn
    try:
        await _read_loop(conn, session)
    finally:
        state.sessions.discard(session)
        session.shutdown()
        await conn.out.stop()
    return ws


CONN_KEY = web.RequestKey("alertwire_ws", WsConnection)


async def _read_loop(conn: WsConnection, session: Session) -> None:
    ws = conn.ws
    limit = session.limits.max_message_bytes
    while not session.closed:
        msg = await ws.receive()
        conn.last_seen = time.monotonic()
        kind = msg.type
        if kind is WSMsgType.TEXT:
            text: str = msg.data
            if len(text) > limit or (len(text) * 4 > limit and len(text.encode()) > limit):
                conn.close(CLOSE_TOO_BIG, "Message too big")
                return
            await session.receive(text)
        elif kind is WSMsgType.BINARY:
            if len(msg.data) > limit:
                conn.close(CLOSE_TOO_BIG, "Message too big")
                return
            session.receive_binary()
        elif kind is WSMsgType.PING:
            await ws.pong(msg.data)
        elif kind is WSMsgType.PONG:
            continue
        else:  # CLOSE, CLOSING, CLOSED, ERROR
            if kind is WSMsgType.ERROR:
                log.info("websocket closed on a protocol error: %s", type(msg.data).__name__)
            return
