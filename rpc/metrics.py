"""The server's metrics for operators: prometheus_client objects behind bounded labels.

Every label's values are declared up front (reasons, transports, procedure paths, error
names): a value outside its set is counted as "other", so no client can grow the series count,
whatever path, reason or header it sends. Each server has its own CollectorRegistry (tests run
many servers in one process). Things are counted once per event (a call, a commit, a refusal,
an alert event delivered on this node), never per subscriber on the fan-out path.

The transport serves `Metrics.render()` as `GET /metrics`; the protocol core bumps the
counters through the `Metrics` instance its transport hands to each `Session`; the dispatcher
times calls through `CallMetrics`; server.main wires the commit and delivery histograms.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from prometheus_client import GCCollector, Info, PlatformCollector, ProcessCollector
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from rpc.errors import ErrorCode
from rpc.metrics_registry import OTHER, Counter, Gauge, Histogram, Registry

__all__ = ["CONTENT_TYPE", "OTHER", "CallMetrics", "Counter", "Gauge", "Histogram", "Metrics"]
__all__ += ["Registry"]

OK = "ok"
# What generate_latest writes (with its default escaping) is the 0.0.4 text format.
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4

# Seconds. Calls and commits take from tens of microseconds (a read served from memory) to
# seconds (a database that stalls); delivery from a millisecond to a slow-consumer's seconds.
CALL_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
COMMIT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
DELIVERY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
OUTCOMES = (OK, *(code.name for code in ErrorCode))

TRANSPORTS = ("ws", "http", "sse")
HEALTH_PARTS = ("storage", "bus")
REFUSAL_REASONS = (
    "origin",
    "auth",
    "capacity",
    "per_user",
    "shutting_down",
    "anonymous_per_address",
    "anonymous_evicted",
    "http_capacity",
)
# rpc.auth.TokenError.reason takes these values.
AUTH_FAILURE_REASONS = (
    "missing",
    "too_large",
    "malformed",
    "signature",
    "algorithm",
    "expired",
    "not_yet_valid",
    "issuer",
    "audience",
    "missing_claim",
    "bad_claim",
    "not_configured",
    "revoked",
    "api_key",  # an inbound webhook's key missing, unknown or revoked
)
# What services.admin.AdminService counts (rpc.admin_control.ADMIN_ACTIONS' values).
ADMIN_ACTIONS = ("stats", "disconnect", "revoke_user", "revoke_token")
BAD_FRAME_REASONS = (
    "parse",
    "binary",
    "too_deep",
    "too_many_values",
    "batch_too_large",
    "bad_id",
    "invalid_utf8",
)
# rpc.client_errors.ClientErrorLog.report's kinds: "bad_http" is a request aiohttp's parser
# refused (server.logs routes those); the transport reports the others.
CLIENT_ERROR_KINDS = (
    "bad_http",
    "bad_frame",
    "too_large",
    "auth",
    "origin",
    "rate_limited",
    "capacity",
    "timeout",
)


class CallMetrics:
    """Per-procedure call counts and durations, labelled by declared path and outcome ("ok" or
    the error's name). Paths are declared from the router (`declare`); anything else a client
    names is "other"."""

    def __init__(self, registry: Registry) -> None:
        labels = {"procedure": (), "outcome": OUTCOMES}
        self.calls = registry.labelled_counter(
            "alertwire_rpc_calls_total",
            "Queries and mutations by procedure and outcome, and calls of procedures that do not "
            'exist (procedure="other").',
            labels,
        )
        self.duration = registry.histogram(
            "alertwire_rpc_duration_seconds",
            "Time from a query or mutation's checks to its encoded result, by procedure and "
            "outcome.",
            CALL_BUCKETS,
            labels,
        )
        # One pair of children per (path, outcome): a call costs two dict hits and two observes.
        self._series: dict[tuple[str, str], tuple[Any, Any]] = {}

    def declare(self, paths: Iterable[str]) -> None:
        paths = tuple(paths)
        self.calls.declare("procedure", paths)
        self.duration.declare("procedure", paths)

    def observe(self, path: str, outcome: str, seconds: float) -> None:
        series = self._series.get((path, outcome))
        if series is None:
            series = self.calls.child(path, outcome), self.duration.child(path, outcome)
            if len(self._series) < 4096:  # only declared values reach here after "other"
                self._series[(path, outcome)] = series
        series[0].inc()
        series[1].observe(seconds)

    def not_found(self, path: str) -> None:
        """A call of a path that is not a procedure (or not of the kind asked for)."""
        self.calls.child(path, ErrorCode.NOT_FOUND.name).inc()


class Metrics:
    """The server's metrics. One instance per server (it lives in the transport's state).

    `latency` False leaves out what is observed per call, per commit and per event (the
    procedure, commit and delivery histograms): for measuring what observing costs."""

    def __init__(self, node: str | None = None, latency: bool = True) -> None:
        r = self.registry = Registry()
        self.latency = latency
        self.connections_open = r.gauge(
            "alertwire_connections_open",
            "Open WebSocket connections and SSE streams.",
            "transport",
            ("ws", "sse"),
        )
        self.connections_refused = r.counter(
            "alertwire_connections_refused_total",
            "WebSocket upgrades, SSE streams and TCP connections refused, and requests refused "
            "for their Origin, by reason.",
            "reason",
            REFUSAL_REASONS,
        )
        self.auth_failures = r.counter(
            "alertwire_auth_failures_total",
            "Presented tokens that were refused, by reason.",
            "reason",
            AUTH_FAILURE_REASONS,
        )
        self.rate_limited = r.counter(
            "alertwire_rate_limited_total",
            "Requests answered TOO_MANY_REQUESTS by the rate limit.",
            "transport",
            TRANSPORTS,
        )
        self.subscriptions_open = r.gauge(
            "alertwire_subscriptions_open", "Live subscriptions on every connection."
        )
        self.subscriptions_refused = r.counter(
            "alertwire_subscriptions_refused_total",
            "Subscriptions refused at MAX_SUBSCRIPTIONS_PER_CONNECTION.",
        )
        self.oversize_messages = r.counter(
            "alertwire_oversize_messages_total",
            "WebSocket frames (closed 1009) and HTTP bodies (413) over MAX_MESSAGE_BYTES, or over "
            "MAX_UNAUTHENTICATED_MESSAGE_BYTES before authentication.",
            "transport",
            ("ws", "http"),
        )
        self.slow_consumer_closes = r.counter(
            "alertwire_slow_consumer_closes_total",
            "Connections closed because their send queue overflowed (WebSocket 4008).",
        )
        self.auth_timeouts = r.counter(
            "alertwire_auth_timeouts_total",
            "WebSockets closed (4001) for not authenticating in time.",
        )
        self.token_expiries = r.counter(
            "alertwire_token_expiries_total",
            "Live connections closed (4001) because their token expired.",
        )
        self.bad_frames = r.counter(
            "alertwire_bad_frames_total",
            "Frames or bodies rejected before dispatch, by reason.",
            "reason",
            BAD_FRAME_REASONS,
        )
        self.client_errors = r.counter(
            "alertwire_client_errors_total",
            "Malformed or refused requests, by kind: every one, though the log tells each kind "
            "at most once per 10 s per client address.",
            "kind",
            CLIENT_ERROR_KINDS,
        )

        self.http_connections_open = r.gauge(
            "alertwire_http_connections_open",
            "TCP connections in the HTTP pool (not WebSockets or SSE streams).",
        )
        self.anonymous_connections_open = r.gauge(
            "alertwire_unauthenticated_connections_open",
            "WebSockets open that have not authenticated yet.",
        )
        self.http_timeouts = r.counter(
            "alertwire_http_timeouts_total",
            "Connections closed because a request's headers did not arrive in time.",
            "kind",
            ("headers",),
        )
        self.outbound_queued_bytes = r.gauge(
            "alertwire_outbound_queued_bytes",
            "Outbound data waiting for slow clients, all connections together.",
        )
        self.outbound_budget_closes = r.counter(
            "alertwire_outbound_budget_closes_total",
            "Connections closed furthest behind first when SEND_QUEUE_TOTAL_BYTES was passed.",
        )
        self.sse_stalls = r.counter(
            "alertwire_sse_stalls_total",
            "SSE streams closed because their writes did not drain in time.",
        )
        self.health = r.labelled_gauge(
            "alertwire_health_ok",
            "1 while a part /health reports is ok, 0 while it is down or degraded (read at "
            "each scrape; a part this node does not have is absent).",
            {"part": HEALTH_PARTS},
        )
        self.subscriptions = r.labelled_gauge(
            "alertwire_subscriptions_by_kind",
            "Live subscriptions by transport and kind (the subscription procedure's path).",
            {"transport": ("ws", "sse"), "kind": ()},
        )
        self.admin_actions = r.counter(
            "alertwire_admin_actions_total",
            "Uses of the admin procedures on this node (each is logged with the admin's sub).",
            "action",
            ADMIN_ACTIONS,
        )
        self.admin_closes = r.counter(
            "alertwire_admin_closed_connections_total",
            "Connections on this node closed (4001) by admin.disconnect or a token revocation.",
            "reason",
            ("disconnect", "revoked"),
        )
        self.calls = CallMetrics(r)
        self.commit_seconds = r.histogram(
            "alertwire_commit_duration_seconds",
            "Time to commit one write batch (all the operations waiting for the store).",
            COMMIT_BUCKETS,
        )
        self.delivery_seconds = r.histogram(
            "alertwire_event_delivery_seconds",
            "From an alert event's commit to its frames written to every WebSocket subscribed "
            "on this node, once per event committed on this node that had subscribers here.",
            DELIVERY_BUCKETS,
        )
        if node is not None:
            Info("alertwire_node", "This node's NODE_ID.", registry=r.collectors).info(
                {"node": node}
            )
        # Runtime: process (CPU, memory, file descriptors), Python version, garbage collector.
        ProcessCollector(registry=r.collectors)
        PlatformCollector(registry=r.collectors)
        GCCollector(registry=r.collectors)

    def declare_procedures(self, calls: Iterable[str], subscriptions: Iterable[str]) -> None:
        """The router's paths become label values; nothing else ever does."""
        self.calls.declare(calls)
        self.subscriptions.declare("kind", subscriptions)

    def delivered(self, committed_at: float) -> None:
        """An event committed at `committed_at` (time.perf_counter) is on every socket."""
        self.delivery_seconds.observe(time.perf_counter() - committed_at)

    def render(self) -> str:
        return self.registry.render()
