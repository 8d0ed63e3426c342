"""Inbound webhooks: `POST /api/webhooks/<name>` (CONTRACT 9; routes in rpc/inbound.py).

One implementation for every route: the body is the input of the procedure the route stands
for, called through the dispatcher as a `service` principal scoped to the API key's hospital,
so inputs, roles and hospitals are checked exactly as for any other call. The checks, in
order, each answering with `{"error": {"code", "message", "fieldErrors"?}}`:

route (404) -> key present and live (401) -> scope (403) -> rate per key (429) -> body size
(413) -> signature, for signed keys (401) -> Idempotency-Key (400; a repeat is answered from
the store, 409 if its body differs) -> JSON (400) -> the procedure (its own answer).

A request whose key is missing or wrong pays from its address's anonymous rate allowance and
has its body left unread, as any request without a token (CONTRACT 5a).
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import time
from collections import OrderedDict
from typing import Any

import orjson
from aiohttp import web

from rpc import signatures
from rpc.auth import bearer_token
from rpc.context import Principal
from rpc.errors import ErrorCode, RpcError, to_rpc_error
from rpc.inbound import INBOUND_ROUTES, InboundGate, InboundKey, Remembered
from rpc.limits import TokenBucket, Unlimited, rate_limiter
from rpc.transport_aiohttp.http import json_response, parse_input, read_body
from rpc.transport_aiohttp.state import STATE_KEY, ServerState

PATH = "/api/webhooks/{name}"
IDEMPOTENCY_HEADER = "Idempotency-Key"
MAX_IDEMPOTENCY_KEY = 128
MAX_KEY_BUCKETS = 10_000


class InboundState:
    """Per-key rate buckets and the requests in flight per Idempotency-Key on this node."""

    def __init__(self, gate: InboundGate) -> None:
        self.gate = gate
        self.buckets: OrderedDict[str, TokenBucket | Unlimited] = OrderedDict()
        # (hospital, Idempotency-Key) -> [lock, requests holding or awaiting it]
        self.in_flight: dict[tuple[str, str], tuple[asyncio.Lock, list[int]]] = {}

    def bucket(self, state: ServerState, key_id: str) -> TokenBucket | Unlimited:
        bucket = self.buckets.pop(key_id, None) or rate_limiter(state.limits)
        self.buckets[key_id] = bucket
        while len(self.buckets) > MAX_KEY_BUCKETS:
            self.buckets.popitem(last=False)
        return bucket


INBOUND_KEY = web.AppKey("alertwire_inbound", InboundState)


def error_body(error: RpcError) -> bytes:
    body: dict[str, Any] = {"code": error.code.name, "message": error.message}
    field_errors = error.data.get("fieldErrors")
    if field_errors:
        body["fieldErrors"] = field_errors
    return orjson.dumps({"error": body})


def error_response(error: RpcError, *, close: bool = False) -> web.Response:
    response = json_response(error_body(error), status=error.code.http_status)
    if error.code is ErrorCode.UNAUTHORIZED:
        response.headers["WWW-Authenticate"] = 'Bearer realm="webhooks"'
    if close:  # refused before the body was read: do not leave it on a kept-alive connection
        response.force_close()
    return response


def presented_key(request: web.Request) -> str | None:
    return bearer_token(request.headers.get("Authorization")) or request.headers.get("X-Api-Key")


async def handle_inbound(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    inbound = request.app[INBOUND_KEY]
    try:
        return await _handle(request, state, inbound)
    except RpcError as exc:
        return error_response(exc, close=not request.content.at_eof())
    except Exception as exc:  # never a stack trace: logged, answered as a plain 500
        return error_response(to_rpc_error(exc), close=True)


async def _handle(request: web.Request, state: ServerState, inbound: InboundState) -> web.Response:
    route = INBOUND_ROUTES.get(request.match_info["name"])
    proc = state.dispatcher.router.get(route.procedure) if route is not None else None
    if route is None or proc is None:
        raise RpcError(ErrorCode.NOT_FOUND, "No webhook at this path")
    if request.method != "POST":
        refusal = error_response(
            RpcError(ErrorCode.METHOD_NOT_SUPPORTED, "Webhooks are POSTed"), close=True
        )
        refusal.headers["Allow"] = "POST"
        return refusal
    key = await _authenticate(request, state, inbound)
    if route.scope not in key.scopes:
        raise RpcError(ErrorCode.FORBIDDEN, f"This API key lacks the scope {route.scope}")
    if not inbound.bucket(state, key.key_id).take():
        state.metrics.rate_limited.inc("http")
        raise RpcError(
            ErrorCode.TOO_MANY_REQUESTS,
            f"Rate limit exceeded ({state.limits.rate_per_10s} requests per 10 s per key)",
        )
    ctype = request.content_type
    if request.content_length and ctype not in ("application/json", ""):
        raise RpcError(ErrorCode.UNSUPPORTED_MEDIA_TYPE, "Send application/json")
    body = await read_body(request, state, state.limits.message_limit(True))
    if key.signing_secret is not None:
        header = request.headers.get(signatures.HEADER)
        problem = signatures.verify(key.signing_secret, header, body, time.time())
        if problem is not None:
            state.refused(request, "auth", "webhook signature refused")
            raise RpcError(ErrorCode.UNAUTHORIZED, problem)
    idempotency_key = _idempotency_key(request)
    if idempotency_key is None:
        status, out = await _call(request, state, key, route.procedure, body, None, None)
        return json_response(out, status=status if status >= 400 else route.status)
    fingerprint = hashlib.sha256(route.procedure.encode() + b"\n" + body).hexdigest()
    place = (key.hospital_id, idempotency_key)
    lock, users = inbound.in_flight.setdefault(place, (asyncio.Lock(), [0]))
    users[0] += 1
    try:
        async with lock:  # a concurrent repeat on this node waits for the first's answer
            remembered = await inbound.gate.recall(*place)
            if remembered is None:
                status, out = await _call(
                    request, state, key, route.procedure, body, route.key_field, idempotency_key
                )
                if status >= 400:
                    return json_response(out, status=status)
                remembered = await inbound.gate.remember(
                    *place, Remembered(fingerprint, route.status, out)
                )
    finally:
        users[0] -= 1
        if users[0] == 0:
            del inbound.in_flight[place]
    if remembered.fingerprint != fingerprint:
        raise RpcError(
            ErrorCode.CONFLICT, "This Idempotency-Key was used with a different request body"
        )
    return json_response(remembered.body, status=remembered.status)


async def _authenticate(
    request: web.Request, state: ServerState, inbound: InboundState
) -> InboundKey:
    presented = presented_key(request)
    key = await inbound.gate.authenticate(presented) if presented else None
    if key is not None:
        return key
    # As any request without a valid credential: paid from the address's allowance.
    if not state.http_bucket(None, request).take():
        state.metrics.rate_limited.inc("http")
        raise RpcError(ErrorCode.TOO_MANY_REQUESTS, "Too many requests without a valid API key")
    state.metrics.auth_failures.inc("api_key")
    state.refused(request, "auth", "API key missing or refused")
    if not presented:
        raise RpcError(ErrorCode.UNAUTHORIZED, "An API key is required")
    raise RpcError(ErrorCode.UNAUTHORIZED, "The API key is not valid or was revoked")


def _idempotency_key(request: web.Request) -> str | None:
    raw = request.headers.get(IDEMPOTENCY_HEADER)
    if raw is None:
        return None
    if not 1 <= len(raw) <= MAX_IDEMPOTENCY_KEY or not raw.isprintable():
        raise RpcError(
            ErrorCode.BAD_REQUEST,
            "Invalid Idempotency-Key",
            {"fieldErrors": {IDEMPOTENCY_HEADER: "must be 1 to 128 printable characters"}},
        )
    return raw


async def _call(
    request: web.Request,
    state: ServerState,
    key: InboundKey,
    path: str,
    body: bytes,
    key_field: str | None,
    idempotency_key: str | None,
) -> tuple[int, bytes]:
    """The procedure's (status, body): its output, or its error in the webhook shape."""
    try:
        raw = parse_input(state, body, request) if body.strip() else None
    except orjson.JSONDecodeError:
        error = RpcError(ErrorCode.BAD_REQUEST, "The body is not valid JSON")
        return error.code.http_status, error_body(error)
    if key_field is not None and idempotency_key is not None and isinstance(raw, dict):
        raw.setdefault(key_field, idempotency_key)
    principal = Principal(
        sub=f"apikey:{key.key_id}",
        role="service",
        hospitals=frozenset({key.hospital_id}),
        expires_at=math.inf,
        name=key.name,
    )
    dispatcher = state.dispatcher
    ctx = dispatcher.new_context(principal=principal, connection_id="webhook", transport="http")
    proc = dispatcher.lookup(path)
    try:
        return 200, await dispatcher.run(ctx, proc, raw)
    except Exception as exc:
        error = to_rpc_error(exc)
        return error.code.http_status, error_body(error)
