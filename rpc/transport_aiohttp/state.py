"""What the transport shares across requests: the dispatcher, auth, limits, live connections,
origin policy and the server's lifecycle flags."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from aiohttp import web

from rpc.addresses import client_address
from rpc.admin_control import NodeControl
from rpc.auth import AuthConfig, TokenError, bearer_token, verify_token
from rpc.client_errors import LOGGER as CLIENT_ERRORS_LOGGER
from rpc.client_errors import ClientErrorLog
from rpc.connections import ConnectionRegistry
from rpc.context import Principal
from rpc.dispatch import Dispatcher
from rpc.errors import ErrorCode, RpcError
from rpc.inbound import InboundGate
from rpc.limits import AnonymousPool, Limits, TokenBucket, Unlimited, rate_limiter
from rpc.metrics import Metrics
from rpc.revocation import Revocations
from rpc.router import Kind
from rpc.transport_aiohttp.budget import OutboundBudget
from rpc.transport_aiohttp.guard import ConnectionGuard

if TYPE_CHECKING:
    from rpc.session import Session

LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})
MAX_HTTP_BUCKETS = 10_000


@dataclass(frozen=True, slots=True)
class OriginPolicy:
    """ALLOWED_ORIGINS, or (unset) the same host, plus localhost in development."""

    allowed: frozenset[str] = frozenset()
    allow_localhost: bool = True

    def permits(self, origin: str | None, host: str | None) -> bool:
        if origin is None:
            return True  # not a browser
        origin = origin.strip().rstrip("/")
        if origin in self.allowed or "*" in self.allowed:
            return True
        if self.allowed:
            return False
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return False
        if self.allow_localhost and parts.hostname in LOCAL_HOSTS:
            return True
        return host is not None and parts.netloc.lower() == host.lower()


@dataclass(eq=False)
class ServerState:
    dispatcher: Dispatcher
    auth: AuthConfig | None
    limits: Limits
    registry: ConnectionRegistry
    origins: OriginPolicy = field(default_factory=OriginPolicy)
    metrics: Metrics = field(default_factory=Metrics)
    metrics_token: str | None = None  # None: GET /metrics is open (keep it internal)
    # Tokens revoked before they expire: refused on every path (rpc.revocation).
    revocations: Revocations = field(default_factory=Revocations)
    # API keys and remembered responses for inbound webhooks; None: no /api/webhooks routes.
    inbound: InboundGate | None = None
    started_at: float = field(default_factory=time.time)
    ready: bool = False
    shutting_down: bool = False
    sessions: set[Session] = field(default_factory=set)
    # Set on shutdown so long-lived HTTP streams (SSE) stop waiting at once.
    wakeups: set[asyncio.Event] = field(default_factory=set)
    _http_buckets: OrderedDict[tuple[str, str], TokenBucket | Unlimited] = field(
        default_factory=OrderedDict
    )
    # Built from `limits` (CONTRACT 5a): the anonymous pool, the outbound budget and the
    # listener's guard (which `server.main` hands to the listening socket).
    anonymous: AnonymousPool = field(init=False)
    budget: OutboundBudget = field(init=False)
    guard: ConnectionGuard = field(init=False)
    client_errors: ClientErrorLog = field(init=False)
    control: NodeControl = field(init=False)

    def __post_init__(self) -> None:
        limits = self.limits
        # Admin disconnects, revocations and stats requests from any node act on this one's
        # sessions (rpc.admin_control).
        self.control = NodeControl(
            self.registry.cluster, self.sessions, self.revocations, self.metrics
        )
        self.control.attach()
        # The router's paths are the only procedure labels; calls are counted by the server
        # whose dispatcher this is (with latency observation on).
        procedures = list(self.dispatcher.router)
        self.metrics.declare_procedures(
            (p.path for p in procedures if p.kind is not Kind.SUBSCRIPTION),
            (p.path for p in procedures if p.kind is Kind.SUBSCRIPTION),
        )
        if self.metrics.latency:
            self.dispatcher.calls = self.metrics.calls
        self.anonymous = AnonymousPool(
            limits.max_unauthenticated_connections,
            limits.max_unauthenticated_per_address,
            count=self.metrics.connections_refused.inc,
        )
        self.budget = OutboundBudget(limits.send_queue_total_bytes, self.metrics)
        self.client_errors = ClientErrorLog(
            logging.getLogger(CLIENT_ERRORS_LOGGER), count=self.metrics.client_errors.inc
        )
        self.guard = ConnectionGuard(
            limits.max_http_connections, limits.header_timeout_s, self.metrics, self.client_errors
        )

    def refused(self, request: web.Request, kind: str, message: str) -> None:
        """Log a malformed or refused request, throttled per kind and address (CONTRACT 5a);
        `message` is a fixed description, never anything the client sent."""
        self.client_errors.report(kind, self.client_address(request), message)

    def reporter(self, request: web.Request) -> Callable[[str, str], None]:
        """`refused` bound to this request's client address, for a Session."""
        address = self.client_address(request)
        return lambda kind, message: self.client_errors.report(kind, address, message)

    def client_address(self, request: web.Request) -> str:
        """The address per-address limits count `request` under (rpc.addresses)."""
        return client_address(
            request.remote, request.headers.get("X-Forwarded-For"), self.limits.trusted_proxies
        )

    def refresh_gauges(self) -> None:
        """Gauges read at scrape time rather than kept on every change."""
        self.metrics.http_connections_open.set(self.guard.http_open)
        self.metrics.anonymous_connections_open.set(self.anonymous.open)
        self.metrics.outbound_queued_bytes.set(self.budget.charged)

    def principal_from(self, request: web.Request) -> tuple[Principal | None, RpcError | None]:
        """The token of the Authorization header or `token` query parameter, verified."""
        token = bearer_token(request.headers.get("Authorization")) or request.query.get("token")
        return self.verify(token, request)

    def verify(
        self, token: str | None, request: web.Request
    ) -> tuple[Principal | None, RpcError | None]:
        """(principal, None), or (None, why the token was refused); (None, None): no token."""
        if not token or self.auth is None:
            return None, None
        try:
            principal = verify_token(token, self.auth)
            if self.revocations.refuses(principal):
                raise TokenError("Token revoked", "revoked")
            return principal, None
        except TokenError as exc:
            self.metrics.auth_failures.inc(exc.reason)
            self.refused(request, "auth", f"token refused ({exc.reason})")
            return None, exc

    def admission_error(self, principal: Principal | None) -> RpcError | None:
        """MAX_CONNECTIONS and MAX_CONNECTIONS_PER_USER for a new long-lived connection
        (WebSocket or SSE stream) or a socket's first identity: the newest is refused, older
        ones keep working. Only authenticated connections count: those not yet authenticated
        have their own pool (`anonymous`)."""
        limits = self.limits
        if principal is None:
            return None
        if limits.max_connections and len(self.registry) >= limits.max_connections:
            self.metrics.connections_refused.inc("capacity")
            return RpcError(ErrorCode.SERVICE_UNAVAILABLE, "Server is at capacity")
        cap = limits.max_connections_per_user
        if cap and self.registry.connections_of(principal.sub) >= cap:
            self.metrics.connections_refused.inc("per_user")
            return RpcError(
                ErrorCode.TOO_MANY_REQUESTS,
                f"Too many connections for this user (limit {cap}); close one first",
            )
        return None

    def http_bucket(
        self, principal: Principal | None, request: web.Request
    ) -> TokenBucket | Unlimited:
        """HTTP has no connection: rate-limit per caller and client address (LRU-bounded)."""
        key = (principal.sub if principal else "", self.client_address(request))
        bucket = self._http_buckets.pop(key, None) or rate_limiter(self.limits)
        self._http_buckets[key] = bucket
        while len(self._http_buckets) > MAX_HTTP_BUCKETS:
            self._http_buckets.popitem(last=False)
        return bucket


STATE_KEY = web.AppKey("alertwire_state", ServerState)
