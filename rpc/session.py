"""One connection's protocol state, free of I/O.

The transport feeds decoded text frames to `Session.receive` and the session writes encoded
frames through `Transport.send` (which must enqueue, never block). Subscription events are
pushed from outside through each subscription's sink.

Calls on a WebSocket are pipelined: a frame that holds only queries and mutations runs as a
task of its own (at most `Limits.max_calls_in_flight` at once, after which the socket is not
read until one ends), so a device that sends several mutations without waiting gets them into
one commit. Replies still go out in the order the requests came, and any other frame (auth,
connection params, subscriptions, stops) waits for the calls before it: pipelining changes how
fast a connection is answered, never what it is answered.

Both dialects share this state (CONTRACT 3b): a message whose method is one of tRPC's goes to
`rpc.trpc`, everything else to `rpc.jsonrpc`.
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

import orjson

from rpc import jsonrpc, log_context, trpc
from rpc.auth import AuthConfig, TokenError, verify_token
from rpc.connections import ConnectionRegistry
from rpc.context import Context, Principal
from rpc.dispatch import Dispatcher
from rpc.errors import ErrorCode, RpcError, parse_error
from rpc.jsoncost import measure
from rpc.limits import Limits, RateLimiter, rate_limiter
from rpc.metrics import Metrics
from rpc.revocation import Revocations
from rpc.router import Kind
from rpc.subscription import Envelope, Subscription

log = logging.getLogger("alertwire.session")

CLOSE_UNAUTHORIZED = 4001
CLOSE_SLOW_CONSUMER = 4008
CLOSE_SERVICE_RESTART = 1012

_ids = itertools.count(1)

# Inside a pipelined call: the frames it answers with, held until the calls before it are
# answered. Outside one (None): frames go straight to the transport.
_held: contextvars.ContextVar[list[bytes] | None] = contextvars.ContextVar(
    "alertwire_held_replies", default=None
)


class Transport(Protocol):
    def send(self, frame: bytes) -> None:
        """Queue one text frame (UTF-8 JSON, or b"PONG"). Never blocks."""

    def close(self, code: int, reason: str) -> None:
        """Close the connection after the frames already queued."""


class Session:
    def __init__(
        self,
        dispatcher: Dispatcher,
        transport: Transport,
        *,
        auth: AuthConfig | None,
        limits: Limits,
        registry: ConnectionRegistry | None = None,
        principal: Principal | None = None,
        http: bool = False,
        transport_name: str = "ws",
        rate: RateLimiter | None = None,
        auth_error: RpcError | None = None,
        on_subscription_end: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.time,
        metrics: Metrics | None = None,
        admit: Callable[[Principal], None] | None = None,
        refused: Callable[[str, str], None] | None = None,
        revocations: Revocations | None = None,
    ) -> None:
        self.dispatcher = dispatcher
        self.revocations = revocations
        self.transport = transport
        self.auth = auth
        self.limits = limits
        self.registry = registry
        self.http = http
        self.transport_name = transport_name
        self.clock = clock
        # The transport passes the server's; a session built on its own counts privately.
        self.metrics = metrics if metrics is not None else Metrics()
        self.id = f"c{next(_ids)}"
        # The transport's task handles this connection: its log lines name it from here on.
        log_context.bind(connection_id=self.id)
        self.principal: Principal | None = None
        self.subscriptions: dict[tuple[str, Any], Subscription] = {}
        self.used_trpc = False
        self.closed = False
        self._next_sub = itertools.count(1)
        self._rate = rate if rate is not None else rate_limiter(limits)
        # Why a presented token was refused (HTTP), so calls say so instead of "required".
        self.auth_error = auth_error
        self._on_subscription_end = on_subscription_end
        # The transport's admission check for a socket's first identity (connection caps);
        # raises RpcError to refuse. Without one, only the per-user cap is checked here.
        self._admit = admit
        # The transport's client-error log for this connection's address (kind, fixed text).
        self._refused = refused
        self._expiry: asyncio.TimerHandle | None = None
        self._calls: set[asyncio.Task[None]] = set()
        self._last_answered: asyncio.Future[None] | None = None  # the newest call's turn
        self._auth_deadline: asyncio.TimerHandle | None = None
        if principal is not None:
            self.set_principal(principal)
        elif not http and transport_name == "ws":
            loop = asyncio.get_running_loop()
            self._auth_deadline = loop.call_later(limits.auth_timeout_s, self._auth_timed_out)

    # --- frames ------------------------------------------------------------------------------

    async def receive(self, text: str) -> None:
        """Handle one text frame. Never raises: every failure becomes a reply or nothing.

        On a WebSocket it returns once a call has started (see the module's docstring)."""
        if self.closed:
            return
        if text == "PING" and not self.http:
            self.transport.send(b"PONG")
            return
        if text == "PONG":
            return
        if not self._affordable(text):
            return
        try:
            message = orjson.loads(text)
        except orjson.JSONDecodeError:
            self.metrics.bad_frames.inc("parse")
            self.refused("bad_frame", "invalid JSON")
            self.send_connection_error(parse_error("Invalid JSON"))
            return
        if not self.http and self._only_calls(message):
            if len(self._calls) >= self.limits.max_calls_in_flight:
                await asyncio.wait(self._calls, return_when=asyncio.FIRST_COMPLETED)
            self._start_call(message)
            return
        if self._calls:  # in order with the calls before it
            await asyncio.wait(self._calls)
        await self._route_safely(message)

    def _affordable(self, text: str) -> bool:
        """Depth and size in values, from the bytes, before parsing (rpc.jsoncost): a message
        that would cost more than its share is refused at the price of a scan."""
        limits = self.limits
        cost = measure(text, limits.max_json_depth, limits.max_json_values)
        problem = cost.exceeds(limits.max_json_depth, limits.max_json_values)
        if problem is None:
            return True
        if not cost.well_formed:
            self.metrics.bad_frames.inc("parse")
            self.refused("bad_frame", "invalid JSON")
            self.send_connection_error(parse_error("Invalid JSON"))
            return False
        too_deep = cost.depth > limits.max_json_depth
        self.metrics.bad_frames.inc("too_deep" if too_deep else "too_many_values")
        self.refused("too_large", "nested too deeply" if too_deep else "too many values")
        self.send_connection_error(RpcError(ErrorCode.BAD_REQUEST, problem))
        return False

    async def _route_safely(self, message: Any) -> None:
        try:
            await self._route(message)
        except Exception:  # a bug must not take the connection down
            log.exception("unhandled error while handling a frame")
            self.send_connection_error(
                RpcError(ErrorCode.INTERNAL_SERVER_ERROR, "Internal server error")
            )

    def _only_calls(self, message: Any) -> bool:
        """A request, or a batch of them, for queries and mutations only (in either dialect).
        Limits (depth, batch size) are checked when it runs, as for any frame."""
        elements = message if isinstance(message, list) else (message,)
        if not elements:
            return False
        if all(trpc.is_trpc_message(m) for m in elements):
            return all(map(trpc.is_call, elements))
        return all(jsonrpc.plain_call(self, m) for m in elements)

    def _start_call(self, message: Any) -> None:
        before = self._last_answered
        mine: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._last_answered = mine
        task = asyncio.create_task(self._call(message, before, mine))
        self._calls.add(task)
        task.add_done_callback(self._calls.discard)

    async def _call(
        self, message: Any, before: asyncio.Future[None] | None, mine: asyncio.Future[None]
    ) -> None:
        held: list[bytes] = []
        _held.set(held)  # this task's own context
        try:
            await self._route_safely(message)
            if before is not None and not before.done():
                await asyncio.shield(before)
        finally:
            _held.set(None)
            for frame in held:
                self.transport.send(frame)
            mine.set_result(None)
            if self._last_answered is mine:
                self._last_answered = None

    async def calls_done(self) -> None:
        """Until no pipelined call is running (and so every reply has been sent)."""
        while self._calls:
            await asyncio.wait(set(self._calls))

    async def settle(self, timeout_s: float) -> None:
        """Let the calls still running finish (their replies go nowhere once the connection is
        gone; their effects stand), then cancel what is left."""
        if not self._calls:
            return
        _, late = await asyncio.wait(set(self._calls), timeout=timeout_s)
        for task in late:
            task.cancel()
        if late:
            await asyncio.wait(late)

    def refused(self, kind: str, message: str) -> None:
        """A malformed or refused message, for the throttled log (rpc.client_errors). The
        message is a fixed description, never anything the client sent."""
        if self._refused is not None:
            self._refused(kind, message)

    def receive_binary(self) -> None:
        self.metrics.bad_frames.inc("binary")
        self.refused("bad_frame", "binary frame")
        self.send_connection_error(
            RpcError(ErrorCode.BAD_REQUEST, "Binary frames are not supported; send text")
        )

    async def _route(self, message: Any) -> None:
        trpc_batch = (
            isinstance(message, list) and bool(message) and all(map(trpc.is_trpc_message, message))
        )
        if isinstance(message, list) and len(message) > self.limits.max_batch:
            # None of it runs. A JSON-RPC batch gets one error (id null); a tRPC array gets an
            # error per request, as the official server does with maxBatchSize, because the
            # tRPC client would otherwise wait for those requests forever. Either reply is
            # bounded by the frame size limit.
            self.metrics.bad_frames.inc("batch_too_large")
            self.refused("too_large", "batch too large")
            error = RpcError(
                ErrorCode.BAD_REQUEST, f"Batch too large (at most {self.limits.max_batch} requests)"
            )
            if trpc_batch and not self.http:
                self.used_trpc = True
                trpc.reject_all(self, message, error)
            else:
                self.send_connection_error(error)
            return
        if trpc_batch and not self.http:
            self.used_trpc = True
            if all(map(trpc.is_call, message)):
                # Replies are separate frames with their own ids: the calls run concurrently,
                # and mutations share a commit. Otherwise (params, subscriptions) in order.
                await asyncio.gather(*(trpc.handle(self, element) for element in message))
                return
            for element in message:
                await trpc.handle(self, element)
            return
        if trpc.is_trpc_message(message) and not self.http:
            self.used_trpc = True
            await trpc.handle(self, message)
            return
        await jsonrpc.handle(self, message)

    def reply(self, frame: bytes) -> None:
        """A frame that answers a request: held while earlier calls are unanswered."""
        held = _held.get()
        if held is None:
            self.transport.send(frame)
        else:
            held.append(frame)

    def send(self, payload: Any) -> None:
        self.reply(orjson.dumps(payload))

    def send_connection_error(self, error: RpcError) -> None:
        """An error that belongs to no request (id null), in the socket's dialect."""
        if self.used_trpc:
            self.send({"id": None, "error": error.to_dict("trpc")})
        else:
            self.send({"jsonrpc": "2.0", "error": error.to_dict("jsonrpc"), "id": None})

    # --- calls -------------------------------------------------------------------------------

    def context(self, request_id: Any) -> Context:
        return self.dispatcher.new_context(
            principal=self.principal,
            connection_id=self.id,
            request_id=request_id,
            transport=self.transport_name,
            auth_error=self.auth_error,
        )

    def take_rate_token(self) -> None:
        if not self._rate.take():
            self.metrics.rate_limited.inc(self.transport_name)
            self.refused("rate_limited", "rate limit exceeded")
            raise RpcError(
                ErrorCode.TOO_MANY_REQUESTS,
                f"Rate limit exceeded ({self.limits.rate_per_10s} requests per 10 s)",
            )

    async def open_subscription(
        self, key: tuple[str, Any], path: str, raw_input: Any, envelope: Envelope
    ) -> Subscription:
        """Check and open a subscription. Raises RpcError before anything is sent. The caller
        then announces it (`envelope.started()`) and calls `run()`: a push source is live from
        here, so nothing committed after the announcement is missed."""
        proc = self.dispatcher.lookup(path, Kind.SUBSCRIPTION)
        ctx = self.context(key[1])
        params = self.dispatcher.prepare(ctx, proc, raw_input)
        if key in self.subscriptions:
            raise RpcError(ErrorCode.BAD_REQUEST, f"Duplicate id {key[1]}")
        cap = self.limits.max_subscriptions_per_connection
        if cap and len(self.subscriptions) >= cap:
            self.metrics.subscriptions_refused.inc()
            raise RpcError(
                ErrorCode.TOO_MANY_REQUESTS,
                f"Too many subscriptions on this connection (limit {cap})",
            )
        source = await self.dispatcher.open_subscription(ctx, proc, params)
        sub = Subscription(self, key, proc, params, source, envelope)
        if self.closed:  # the connection went away while the procedure ran
            sub.cancel()
            raise RpcError(ErrorCode.CLIENT_CLOSED_REQUEST, "Connection closed")
        self.subscriptions[key] = sub
        return sub

    def new_subscription_id(self) -> str:
        return f"s{next(self._next_sub)}"

    def stop_subscription(self, key: tuple[str, Any]) -> bool:
        sub = self.subscriptions.pop(key, None)
        if sub is None:
            return False
        sub.cancel()
        return True

    def subscription_ended(self, sub: Subscription) -> None:
        """Called by a subscription that finished on its own or with an error."""
        if self.subscriptions.get(sub.key) is sub:
            del self.subscriptions[sub.key]
        if self._on_subscription_end is not None:
            self._on_subscription_end()

    # --- identity ----------------------------------------------------------------------------

    def authenticate(self, token: Any) -> Principal:
        """Verify a token presented on this connection (connectionParams, auth.authenticate)
        and make it the connection's identity. Raises RpcError; the connection stays open."""
        try:
            if self.auth is None:
                raise TokenError("Authentication is not configured", "not_configured")
            if not isinstance(token, str) or not token:
                raise TokenError("Missing token", "missing")
            principal = verify_token(token, self.auth)
            if self.revocations is not None and self.revocations.refuses(principal):
                raise TokenError("Token revoked", "revoked")
        except TokenError as exc:
            self.metrics.auth_failures.inc(exc.reason)
            self.refused("auth", f"token refused ({exc.reason})")
            raise
        if self.principal is None and not self.http:
            if self._admit is not None:
                self._admit(principal)
            else:
                self.check_user_connections(principal)
        if self.principal is not None and principal.sub != self.principal.sub:
            raise RpcError(
                ErrorCode.FORBIDDEN, "A connection cannot change identity; open a new one"
            )
        self.set_principal(principal)
        return principal

    def check_user_connections(self, principal: Principal) -> None:
        """MAX_CONNECTIONS_PER_USER: the newest connection is refused, the older ones keep
        working (a ward screen is never dropped because someone opened another tab)."""
        cap = self.limits.max_connections_per_user
        if cap and self.registry is not None and self.registry.connections_of(principal.sub) >= cap:
            self.metrics.connections_refused.inc("per_user")
            raise RpcError(
                ErrorCode.TOO_MANY_REQUESTS,
                f"Too many connections for this user (limit {cap}); close one first",
            )

    def set_principal(self, principal: Principal) -> None:
        self.principal = principal
        log_context.bind(user_id=principal.sub)
        if self._auth_deadline is not None:
            self._auth_deadline.cancel()
            self._auth_deadline = None
        if self.http:
            return
        if self.registry is not None:
            self.registry.update(self.id, principal)
        if self._expiry is not None:
            self._expiry.cancel()
        leeway = self.auth.leeway_seconds if self.auth else 0.0
        delay = max(0.0, principal.expires_at + leeway - self.clock())
        self._expiry = asyncio.get_running_loop().call_later(delay, self._token_expired)
        self._recheck_subscriptions()

    def _recheck_subscriptions(self) -> None:
        """A refreshed token may grant fewer hospitals: end what it no longer allows."""
        for sub in list(self.subscriptions.values()):
            ctx = self.context(sub.key[1])
            try:
                sub.proc.check_scopes(ctx, sub.params)
            except RpcError as exc:
                sub.finish(exc)

    def _token_expired(self) -> None:
        self._expiry = None
        self.metrics.token_expiries.inc()
        error = RpcError(ErrorCode.UNAUTHORIZED, "Token expired")
        for sub in list(self.subscriptions.values()):
            sub.finish(error)
        self.transport.close(CLOSE_UNAUTHORIZED, "Token expired")
        self.shutdown()

    def close_unauthorized(self, message: str) -> None:
        """Close this connection now (4001) as no longer authorised (an admin disconnected the
        user, or revoked its token): each subscription ends with the error, in its dialect,
        before the socket or stream closes."""
        if self.closed:
            return
        error = RpcError(ErrorCode.UNAUTHORIZED, message)
        for sub in list(self.subscriptions.values()):
            sub.finish(error)
        self.transport.close(CLOSE_UNAUTHORIZED, message)
        self.shutdown()

    def _auth_timed_out(self) -> None:
        self._auth_deadline = None
        if self.principal is None and not self.closed:
            self.metrics.auth_timeouts.inc()
            self.transport.close(CLOSE_UNAUTHORIZED, "Authentication timeout")
            self.shutdown()

    def reject_connection(self, error: RpcError) -> None:
        """Connection-level failure (e.g. bad connectionParams): tell, then close."""
        self.send_connection_error(error)
        code = CLOSE_UNAUTHORIZED if error.code is ErrorCode.UNAUTHORIZED else 1008
        self.transport.close(code, error.message[:100])
        self.shutdown()

    # --- teardown ----------------------------------------------------------------------------

    def reconnect_notice(self) -> None:
        """Before a restart: ask clients to reconnect, in the dialect they speak."""
        if self.used_trpc:
            self.transport.send(b'{"id":null,"method":"reconnect"}')
        else:
            self.transport.send(b'{"jsonrpc":"2.0","method":"server.reconnect"}')

    def shutdown(self) -> None:
        """The connection is gone or going: release everything it holds. Idempotent."""
        if self.closed:
            return
        self.closed = True
        for handle in (self._expiry, self._auth_deadline):
            if handle is not None:
                handle.cancel()
        for sub in list(self.subscriptions.values()):
            sub.cancel()
        self.subscriptions.clear()
        if self.registry is not None:
            self.registry.remove(self.id)
