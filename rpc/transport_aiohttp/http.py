"""HTTP: JSON-RPC 2.0 on POST /api/trpc, and tRPC's httpLink / httpBatchLink on
GET|POST /api/trpc/<path>[,<path>...] (TRPC_PROTOCOL.md section 2)."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from rpc.context import Principal
from rpc.errors import ErrorCode, RpcError, to_rpc_error
from rpc.jsoncost import measure
from rpc.limits import Prepaid, RateLimiter
from rpc.router import Kind
from rpc.session import Session
from rpc.transport_aiohttp.state import STATE_KEY, ServerState

JSON = "application/json"
VARY = "trpc-accept, accept"


class Collector:
    """A Transport that keeps what the session sends, for one HTTP exchange."""

    def __init__(self) -> None:
        self.frames: list[bytes] = []

    def send(self, frame: bytes) -> None:
        self.frames.append(frame)

    def close(self, code: int, reason: str) -> None:
        return None


def json_response(
    body: bytes, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(body=body, status=status, content_type=JSON, headers=headers)


def parse_input(state: ServerState, raw: bytes | str, request: web.Request) -> Any:
    """A client's JSON (a tRPC input, connectionParams), refused before parsing when it would
    cost more than the limits allow (rpc.jsoncost). Raises RpcError or JSONDecodeError."""
    limits = state.limits
    cost = measure(raw, limits.max_json_depth, limits.max_json_values)
    problem = cost.exceeds(limits.max_json_depth, limits.max_json_values)
    if problem is None:
        return orjson.loads(raw)
    if not cost.well_formed:
        raise orjson.JSONDecodeError(problem, "", 0)
    too_deep = cost.depth > limits.max_json_depth
    state.metrics.bad_frames.inc("too_deep" if too_deep else "too_many_values")
    state.refused(request, "too_large", "nested too deeply" if too_deep else "too many values")
    raise RpcError(ErrorCode.BAD_REQUEST, problem)


def body_limit(state: ServerState, principal: Principal | None) -> int:
    """A request without a valid token may send only a small body (CONTRACT 5a)."""
    return state.limits.message_limit(principal is not None)


async def read_body(request: web.Request, state: ServerState, limit: int) -> bytes:
    too_large = RpcError(ErrorCode.PAYLOAD_TOO_LARGE, f"Request body over {limit} bytes")
    if request.content_length is not None and request.content_length > limit:
        state.metrics.oversize_messages.inc("http")
        state.refused(request, "too_large", "request body over the limit")
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(65536):
        size += len(chunk)
        if size > limit:
            state.metrics.oversize_messages.inc("http")
            state.refused(request, "too_large", "request body over the limit")
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def charge_on_arrival(
    request: web.Request, state: ServerState, principal: Principal | None
) -> RateLimiter | RpcError:
    """A request without a valid token pays for itself before anything of it is read: its
    rate bucket (per client address) is charged now and its calls start from that payment
    (Prepaid). An empty bucket refuses it at once, body unread (CONTRACT 5a)."""
    bucket = state.http_bucket(principal, request)
    if principal is not None:
        return bucket
    if not bucket.take():
        state.metrics.rate_limited.inc("http")
        state.refused(request, "rate_limited", "unauthenticated requests over the rate limit")
        return RpcError(
            ErrorCode.TOO_MANY_REQUESTS,
            f"Rate limit exceeded ({state.limits.rate_per_10s} requests per 10 s)",
        )
    return Prepaid(bucket)


def refuse_unread(error: RpcError, body: bytes) -> web.Response:
    """A refusal sent before the body was read: the connection closes, so that no unread body
    is left on a kept-alive connection for the server to drain."""
    response = json_response(body, status=error.code.http_status)
    response.force_close()
    return response


def http_session(
    request: web.Request,
    state: ServerState,
    principal: Principal | None,
    auth_error: RpcError | None,
    rate: RateLimiter,
) -> tuple[Session, Collector]:
    collector = Collector()
    session = Session(
        state.dispatcher,
        collector,
        auth=state.auth,
        limits=state.limits,
        principal=principal,
        http=True,
        transport_name="http",
        rate=rate,
        auth_error=auth_error,
        metrics=state.metrics,
        refused=state.reporter(request),
        revocations=state.revocations,
    )
    return session, collector


async def handle_jsonrpc_post(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    principal, auth_error = state.principal_from(request)
    rate = charge_on_arrival(request, state, principal)
    if isinstance(rate, RpcError):
        error = {"jsonrpc": "2.0", "error": rate.to_dict("jsonrpc"), "id": None}
        return refuse_unread(rate, orjson.dumps(error))
    try:
        body = await read_body(request, state, body_limit(state, principal))
        text = body.decode("utf-8")
    except RpcError as exc:
        error = {"jsonrpc": "2.0", "error": exc.to_dict("jsonrpc"), "id": None}
        return json_response(orjson.dumps(error), status=exc.code.http_status)
    except UnicodeDecodeError:
        text = "\x00"  # not JSON: the session answers with a parse error
    session, collector = http_session(request, state, principal, auth_error, rate)
    await session.receive(text)
    session.shutdown()
    if not collector.frames:
        return web.Response(status=204)
    return json_response(collector.frames[0])


# --- tRPC HTTP ------------------------------------------------------------------------------


def _inputs(
    request: web.Request, state: ServerState, body: bytes, count: int, batch: bool
) -> list[Any]:
    """One raw input per path (None where the client sent none)."""
    if request.method == "GET":
        raw = request.query.get("input")
        document = None if raw is None else parse_input(state, raw, request)
    else:
        document = parse_input(state, body, request) if body.strip() else None
    if not batch:
        return [document]
    if document is None:
        return [None] * count
    if not isinstance(document, dict):
        raise RpcError(ErrorCode.BAD_REQUEST, "A batch input must be an object keyed by index")
    return [document.get(str(i)) for i in range(count)]


def _status(items: list[tuple[int, bytes]], batch: bool) -> int:
    statuses = {status for status, _ in items}
    if len(statuses) == 1:
        return statuses.pop()
    return 207 if batch else items[0][0]


async def handle_trpc_http(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    if request.method == "HEAD":
        return web.Response(status=204)
    paths = request.match_info["paths"].split(",")
    batch = request.query.get("batch") == "1"
    if not batch and len(paths) > 1:
        error = RpcError(ErrorCode.BAD_REQUEST, "Several paths need ?batch=1")
        return json_response(_error_item(error, None), status=400)
    principal, auth_error = state.principal_from(request)
    rate = charge_on_arrival(request, state, principal)
    if isinstance(rate, RpcError):
        return refuse_unread(rate, _error_item(rate, None))
    try:
        if len(paths) > state.limits.max_batch:
            raise RpcError(ErrorCode.BAD_REQUEST, "Batch too large")
        if request.method == "POST":
            ctype = request.content_type
            if request.content_length and ctype not in ("application/json", ""):
                raise RpcError(ErrorCode.UNSUPPORTED_MEDIA_TYPE, "Send application/json")
        limit = body_limit(state, principal)
        body = await read_body(request, state, limit) if request.method == "POST" else b""
        inputs = _inputs(request, state, body, len(paths), batch)
    except orjson.JSONDecodeError:
        error = RpcError(ErrorCode.BAD_REQUEST, "The input is not valid JSON")
        return json_response(_error_item(error, None), status=400, headers={"Vary": VARY})
    except RpcError as exc:
        return json_response(_error_item(exc, None), status=exc.code.http_status)
    session, _ = http_session(request, state, principal, auth_error, rate)
    kind = Kind.QUERY if request.method == "GET" else Kind.MUTATION
    items = [await _call(session, path, kind, raw) for path, raw in zip(paths, inputs, strict=True)]
    session.shutdown()
    headers = {"Vary": VARY}
    if not batch and items[0][0] == 405:
        headers["Allow"] = "POST" if kind is Kind.QUERY else "GET"
    body_out = (b"[" + b",".join(b for _, b in items) + b"]") if batch else items[0][1]
    return json_response(body_out, status=_status(items, batch), headers=headers)


def _error_item(error: RpcError, path: str | None) -> bytes:
    return b'{"error":' + orjson.dumps(error.to_dict("trpc", path)) + b"}"


async def _call(session: Session, path: str, kind: Kind, raw: Any) -> tuple[int, bytes]:
    dispatcher = session.dispatcher
    try:
        session.take_rate_token()
        proc = dispatcher.lookup(path)
        if proc.kind is not kind:
            sent = "GET" if kind is Kind.QUERY else "POST"
            use = {
                Kind.QUERY: "GET",
                Kind.MUTATION: "POST",
                Kind.SUBSCRIPTION: "GET with Accept: text/event-stream",
            }[proc.kind]
            raise RpcError(
                ErrorCode.METHOD_NOT_SUPPORTED,
                f'Unsupported {sent}-request to {proc.kind.value} procedure at path "{path}"; '
                f"use {use}",
            )
        result = await dispatcher.run(session.context(None), proc, raw)
    except Exception as exc:
        error = to_rpc_error(exc)
        return error.code.http_status, _error_item(error, path)
    return 200, b'{"result":{"data":' + result + b"}}"
