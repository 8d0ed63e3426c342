"""The aiohttp application: routes, CORS, heartbeats, health, metrics and graceful shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import orjson
from aiohttp import web

from rpc import log_context
from rpc.auth import bearer_token
from rpc.errors import ErrorCode, RpcError
from rpc.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from rpc.metrics import HEALTH_PARTS
from rpc.session import CLOSE_SERVICE_RESTART
from rpc.transport_aiohttp.guard import SECURITY_HEADERS
from rpc.transport_aiohttp.http import handle_jsonrpc_post, handle_trpc_http, json_response
from rpc.transport_aiohttp.site import CACHE_CONTROL_KEY, add_site
from rpc.transport_aiohttp.sse import handle_sse
from rpc.transport_aiohttp.state import STATE_KEY, ServerState
from rpc.transport_aiohttp.webhooks import INBOUND_KEY, InboundState, handle_inbound
from rpc.transport_aiohttp.webhooks import PATH as WEBHOOKS_PATH
from rpc.transport_aiohttp.ws import WsConnection, handle_ws

log = logging.getLogger("alertwire.transport")

PREFIX = "/api/trpc"
SWEEP_INTERVAL_S = 5.0
CORS_HEADERS = {
    "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
    "Access-Control-Allow-Headers": (
        "authorization, content-type, trpc-accept, last-event-id, x-request-id"
    ),
    "Access-Control-Expose-Headers": "x-request-id",
    "Access-Control-Max-Age": "600",
}
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
HealthCheck = Callable[[], Awaitable[dict[str, object]]]
HEALTH_KEY = web.AppKey("alertwire_health", list[HealthCheck])


CORS_ORIGIN_KEY = web.RequestKey("alertwire_cors_origin", str)
REQUEST_ID_KEY = web.RequestKey("alertwire_request_id", str)
REQUEST_ID_HEADER = "X-Request-Id"


@web.middleware
async def request_ids(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The request's id (the client's `X-Request-Id` when short and plain, else a new one) in
    every log line of its handling (for a WebSocket or SSE stream, its whole life) and in the
    response's own `X-Request-Id`."""
    rid = log_context.request_id(request.headers.get(REQUEST_ID_HEADER))
    request[REQUEST_ID_KEY] = rid
    bound = log_context.bind(request_id=rid)
    try:
        return await handler(request)
    finally:
        log_context.reset(bound)


@web.middleware
async def guarded(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Tells the listener's guard that a request's headers are in, and when it is answered
    (the header deadline of the next request on the connection starts from its first byte)."""
    guard = request.app[STATE_KEY].guard
    guard.request_started(request)
    try:
        return await handler(request)
    finally:
        guard.request_finished(request)


@web.middleware
async def cors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Origins are checked before anything runs (WebSocket upgrades included); requests from
    allowed ones get CORS headers as their response is prepared (`_cors_headers`)."""
    state = request.app[STATE_KEY]
    origin = request.headers.get("Origin")
    if not request.path.startswith(PREFIX) or origin is None:
        return await handler(request)
    if not state.origins.permits(origin, request.host):
        state.metrics.connections_refused.inc("origin")
        state.refused(request, "origin", "request from an origin not allowed")
        error = RpcError(ErrorCode.FORBIDDEN, "Origin not allowed")
        refusal = json_response(orjson.dumps({"error": error.to_dict("trpc")}), status=403)
        if request.headers.get("Upgrade", "").lower() == "websocket":
            refusal.force_close()  # as for every refused upgrade (ws._refuse)
        return refusal
    request[CORS_ORIGIN_KEY] = origin
    if request.method == "OPTIONS":
        return web.Response(status=204)
    return await handler(request)


async def _response_headers(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: also reaches responses that stream (SSE), whose headers are sent
    before the handler returns."""
    response.headers.update(SECURITY_HEADERS)
    rid = request.get(REQUEST_ID_KEY)
    if rid is not None:
        response.headers[REQUEST_ID_HEADER] = rid
    cache_control = request.get(CACHE_CONTROL_KEY)
    if cache_control is not None:  # a content-hashed asset of the site (site.py)
        response.headers["Cache-Control"] = cache_control
    origin = request.get(CORS_ORIGIN_KEY)
    if origin is None:
        return
    response.headers["Access-Control-Allow-Origin"] = origin
    response.headers["Vary"] = ", ".join(filter(None, [response.headers.get("Vary"), "Origin"]))
    response.headers.update(CORS_HEADERS)


async def handle_health(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    if state.shutting_down:
        status, code = "shutting_down", 503
    elif not state.ready:
        status, code = "starting", 503
    else:
        status, code = "ok", 200
    body: dict[str, object] = {
        "status": status,
        "connections": len(state.sessions),
        "uptimeSeconds": round(time.time() - state.started_at, 1),
    }
    parts = await _health_parts(request.app)
    body.update(parts)
    if parts.get("storage") not in (None, "ok"):
        code = 503
        body["status"] = "degraded"
    return json_response(orjson.dumps(body), status=code)


async def _health_parts(app: web.Application) -> dict[str, object]:
    """What the health checks report ("storage", "bus", "node"), merged."""
    parts: dict[str, object] = {}
    for check in app[HEALTH_KEY]:
        _merge_health(parts, await check())
    return parts


def _merge_health(body: dict[str, object], extra: dict[str, object]) -> None:
    """Several checks may report one part ("bus": Redis and a LISTEN connection): a part is
    only "ok" if every check says so."""
    for key, value in extra.items():
        if value == "ok" and body.get(key) not in (None, "ok"):
            continue
        body[key] = value


async def handle_metrics(request: web.Request) -> web.Response:
    """Prometheus text exposition. Counts only: no ids, tokens or patient data. With
    METRICS_TOKEN set, only a scraper that presents it as a Bearer token gets them."""
    state = request.app[STATE_KEY]
    expected = state.metrics_token
    if expected is not None:
        presented = bearer_token(request.headers.get("Authorization")) or ""
        if not hmac.compare_digest(presented.encode(), expected.encode()):
            error = RpcError(ErrorCode.UNAUTHORIZED, "A valid metrics token is required")
            return web.Response(
                status=401,
                body=orjson.dumps({"error": error.to_dict("trpc")}),
                content_type="application/json",
                headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
            )
    state.refresh_gauges()
    # The same checks as /health, so that "storage down" is a series an alerting rule can use
    # (a scrape every few seconds costs one `SELECT 1`).
    for part, value in (await _health_parts(request.app)).items():
        if part in HEALTH_PARTS:
            state.metrics.health.set(1 if value == "ok" else 0, part)
    return web.Response(
        body=state.metrics.render().encode(), headers={"Content-Type": METRICS_CONTENT_TYPE}
    )


async def handle_trpc_get(request: web.Request) -> web.StreamResponse:
    """GET on a path: SSE for subscriptions (or an event-stream Accept), else a query."""
    state = request.app[STATE_KEY]
    path = request.match_info["paths"]
    proc = state.dispatcher.router.get(path)
    wants_sse = "text/event-stream" in request.headers.get("Accept", "")
    if wants_sse or (proc is not None and proc.kind.value == "subscription"):
        return await handle_sse(request)
    return await handle_trpc_http(request)


async def handle_root_get(request: web.Request) -> web.StreamResponse:
    """GET /api/trpc is the WebSocket endpoint."""
    return await handle_ws(request)


async def handle_options(request: web.Request) -> web.Response:
    """CORS preflight (the middleware adds the headers for allowed origins)."""
    return web.Response(status=204)


def create_app(state: ServerState, site_dir: Path | None = None) -> web.Application:
    """The API on one port; with `site_dir`, also the static site built there (site.py)."""
    app = web.Application(
        middlewares=[request_ids, guarded, cors], client_max_size=state.limits.max_message_bytes
    )
    app[STATE_KEY] = state
    app[HEALTH_KEY] = []
    app.on_response_prepare.append(_response_headers)
    app.router.add_get("/health", handle_health)
    app.router.add_get("/metrics", handle_metrics)
    app.router.add_get(PREFIX, handle_root_get)
    app.router.add_post(PREFIX, handle_jsonrpc_post)
    app.router.add_route("OPTIONS", PREFIX, handle_options)
    app.router.add_get(PREFIX + "/{paths}", handle_trpc_get, allow_head=False)
    app.router.add_route("HEAD", PREFIX + "/{paths}", handle_trpc_http)
    app.router.add_post(PREFIX + "/{paths}", handle_trpc_http)
    app.router.add_route("OPTIONS", PREFIX + "/{paths}", handle_options)
    if state.inbound is not None:
        app[INBOUND_KEY] = InboundState(state.inbound)
        app.router.add_route("*", WEBHOOKS_PATH, handle_inbound)  # 405 in JSON too
    if site_dir is not None:
        add_site(app, site_dir)
    app.cleanup_ctx.append(_sweeper)
    return app


async def _sweeper(app: web.Application) -> AsyncIterator[None]:
    """One task for every socket's heartbeat: ping after HEARTBEAT of silence, drop after
    HEARTBEAT_TIMEOUT (no per-socket timers)."""
    state = app[STATE_KEY]
    task = asyncio.create_task(_sweep_forever(state), name="heartbeat-sweeper")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _sweep_forever(state: ServerState) -> None:
    while True:
        await asyncio.sleep(SWEEP_INTERVAL_S)
        sweep(state, time.monotonic())


def sweep(state: ServerState, now: float) -> None:
    interval = state.limits.heartbeat_interval_s
    timeout = state.limits.heartbeat_timeout_s
    for session in list(state.sessions):
        conn = session.transport
        if not isinstance(conn, WsConnection) or conn.out.closing:
            continue
        idle = now - conn.last_seen
        if idle >= timeout:
            log.info("closing a websocket that answered no ping for %.0f s", idle)
            conn.out.abort()
        elif idle >= interval and now - conn.last_ping >= interval:
            conn.last_ping = now
            task = asyncio.create_task(conn.ws.ping())
            task.add_done_callback(_ignore_result)


def _ignore_result(task: asyncio.Task[None]) -> None:
    if not task.cancelled():
        task.exception()


async def shutdown(state: ServerState, grace_s: float = 5.0) -> None:
    """Stop taking connections, ask every client to reconnect, then close them (1012)."""
    state.shutting_down = True
    for event in list(state.wakeups):
        event.set()
    sockets = [s for s in state.sessions if isinstance(s.transport, WsConnection)]
    for session in sockets:
        session.reconnect_notice()
        session.transport.close(CLOSE_SERVICE_RESTART, "Server restarting")
    waits = [
        s.transport.out.finished.wait() for s in sockets if isinstance(s.transport, WsConnection)
    ]
    if waits:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.gather(*waits), grace_s)
