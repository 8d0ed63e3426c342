"""tRPC httpSubscriptionLink: GET /api/trpc/<subscription> as Server-Sent Events
(TRPC_PROTOCOL.md section 3). Always 200; errors travel as `serialized-error` events."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import orjson
from aiohttp import web

from rpc.errors import ErrorCode, RpcError
from rpc.session import Session
from rpc.transport_aiohttp.http import parse_input
from rpc.transport_aiohttp.outbound import SseOutbound
from rpc.transport_aiohttp.state import STATE_KEY, ServerState

PING_INTERVAL_S = 10.0
# The client re-creates the EventSource (with input.lastEventId) after this much silence.
RECONNECT_AFTER_INACTIVITY_MS = 30_000
HEADERS = {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-store",
    "X-Accel-Buffering": "no",
    "Connection": "keep-alive",
}
PING = b"event: ping\ndata: \n\n"


class SseEnvelope:
    __slots__ = ("path",)

    def __init__(self, path: str) -> None:
        self.path = path

    def started(self) -> bytes:
        data = orjson.dumps({"reconnectAfterInactivityMs": RECONNECT_AFTER_INACTIVITY_MS})
        return b"event: connected\ndata: " + data + b"\n\n"

    def event(self, event_id: str | None, payload: bytes) -> bytes:
        if event_id is None:
            return b"data: " + payload + b"\n\n"
        # Event ids are ours (no newlines); payload is single-line JSON.
        return b"data: " + payload + b"\nid: " + event_id.encode() + b"\n\n"

    def error(self, error: RpcError) -> bytes:
        body = orjson.dumps(error.to_dict("trpc", self.path))
        return b"event: serialized-error\ndata: " + body + b"\n\n"

    def ended(self, error: RpcError | None) -> list[bytes]:
        if error is None:
            return [b"event: return\ndata: \n\n"]
        return [self.error(error)]


def _input(request: web.Request, state: ServerState) -> Any:
    """The input, with lastEventId merged from (in order) the Last-Event-ID header, the
    `lastEventId` query parameter, `Last-Event-Id`, or the input itself."""
    raw = request.query.get("input")
    value = None if raw is None else parse_input(state, raw, request)
    last = (
        request.headers.get("Last-Event-ID")
        or request.query.get("lastEventId")
        or request.query.get("Last-Event-Id")
    )
    if last:
        if isinstance(value, dict):
            value = {**value, "lastEventId": last}
        elif value is None:
            value = {"lastEventId": last}
    return value


def _token(request: web.Request, state: ServerState) -> str | None:
    raw = request.query.get("connectionParams")
    if raw:
        params = parse_input(state, raw, request)
        if isinstance(params, dict) and isinstance(params.get("token"), str):
            return str(params["token"])
    return None


async def handle_sse(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    path = request.match_info["paths"]
    envelope = SseEnvelope(path)
    response = web.StreamResponse(status=200, headers=HEADERS)
    await response.prepare(request)
    state.guard.long_lived(request)
    out = SseOutbound(request, response, state.limits, state.metrics, state.budget)
    try:
        await _serve(request, state, path, envelope, out)
    finally:
        await out.stop()
    return response


async def _serve(
    request: web.Request, state: ServerState, path: str, envelope: SseEnvelope, out: SseOutbound
) -> None:
    ended = asyncio.Event()
    out.on_finished = ended.set  # a stream aborted for stalling ends at once, slots freed
    try:
        raw_input = _input(request, state)
        token = _token(request, state)
    except orjson.JSONDecodeError:
        await _refuse(out, envelope, RpcError(ErrorCode.BAD_REQUEST, "The input is not valid JSON"))
        return
    except RpcError as exc:
        await _refuse(out, envelope, exc)
        return
    principal, auth_error = state.verify(token, request) if token else state.principal_from(request)
    refusal = state.admission_error(principal)
    if refusal is not None:
        state.refused(request, "capacity", "SSE stream refused by a connection cap")
        await _refuse(out, envelope, refusal)
        return
    session = Session(
        state.dispatcher,
        out,
        auth=state.auth,
        limits=state.limits,
        registry=state.registry,
        principal=principal,
        transport_name="sse",
        auth_error=auth_error,
        on_subscription_end=ended.set,
        metrics=state.metrics,
        refused=state.reporter(request),
        revocations=state.revocations,
    )
    state.sessions.add(session)
    state.wakeups.add(ended)
    state.metrics.connections_open.inc("sse")
    try:
        try:
            sub = await session.open_subscription(("sse", 0), path, raw_input, envelope)
        except RpcError as exc:
            out.send(envelope.started())
            out.send(envelope.error(exc))
        else:
            out.send(envelope.started())
            await sub.run()
            await _pump(request, state, out, ended)
        if state.shutting_down:
            out.send(envelope.error(RpcError(ErrorCode.SERVICE_UNAVAILABLE, "Server restarting")))
        out.close(1000, "")
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(out.finished.wait(), 2.0)
    finally:
        state.metrics.connections_open.dec("sse")
        state.wakeups.discard(ended)
        state.sessions.discard(session)
        session.shutdown()


async def _refuse(out: SseOutbound, envelope: SseEnvelope, error: RpcError) -> None:
    """The stream opens (always 200), carries one serialized-error and ends."""
    out.send(envelope.started())
    out.send(envelope.error(error))
    out.close(1000, "")
    await out.finished.wait()


async def _pump(
    request: web.Request, state: ServerState, out: SseOutbound, ended: asyncio.Event
) -> None:
    """Keep the stream alive with pings until it ends, the client leaves or we shut down."""
    while not (ended.is_set() or state.shutting_down or out.closing):
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(ended.wait(), PING_INTERVAL_S)
        transport = request.transport
        if transport is None or transport.is_closing():
            return
        if not ended.is_set():
            out.send(PING)
