"""Counters and gauges for operators, rendered in the Prometheus text exposition format.

Dependency-free and deliberately small. Every metric has at most one label, and that label's
values are declared up front: a value outside the set is counted as "other", so a hostile client
can never grow the series count. Everything is counted once per event (a refusal, a close), never
per subscriber on the fan-out path.

The transport exposes `Metrics.render()` as `GET /metrics`; the protocol core bumps the counters
through the `Metrics` instance its transport hands to each `Session`.
"""

from __future__ import annotations

from collections.abc import Iterable

OTHER = "other"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


class _Metric:
    kind = ""

    def __init__(self, name: str, help: str, label: str | None, values: Iterable[str]) -> None:
        self.name = name
        self.help = help
        self.label = label
        allowed = tuple(values)
        if label is None and allowed:
            raise ValueError(f"{name}: label values without a label name")
        if label is not None and not allowed:
            raise ValueError(f"{name}: a label needs its set of values")
        self._allowed = frozenset(allowed)
        keys = (*allowed, OTHER) if label is not None else ("",)
        self._values: dict[str, float] = dict.fromkeys(keys, 0.0)

    def _key(self, value: str | None) -> str:
        if self.label is None:
            return ""
        return value if value in self._allowed else OTHER

    def get(self, value: str | None = None) -> float:
        return self._values[self._key(value)]

    def total(self) -> float:
        return sum(self._values.values())

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {_escape_help(self.help)}", f"# TYPE {self.name} {self.kind}"]
        for key, value in self._values.items():
            if self.label is None:
                lines.append(f"{self.name} {_number(value)}")
            elif key != OTHER or value:  # "other" appears only once something landed there
                lines.append(f'{self.name}{{{self.label}="{_escape_label(key)}"}} {_number(value)}')
        return lines


class Counter(_Metric):
    kind = "counter"

    def inc(self, value: str | None = None, amount: float = 1.0) -> None:
        if amount < 0:
            raise ValueError("a counter only goes up")
        self._values[self._key(value)] += amount


class Gauge(_Metric):
    kind = "gauge"

    def inc(self, value: str | None = None, amount: float = 1.0) -> None:
        self._values[self._key(value)] += amount

    def dec(self, value: str | None = None, amount: float = 1.0) -> None:
        self._values[self._key(value)] -= amount

    def set(self, amount: float, value: str | None = None) -> None:
        self._values[self._key(value)] = amount


class Registry:
    def __init__(self) -> None:
        self._metrics: dict[str, _Metric] = {}

    def _add(self, metric: _Metric) -> None:
        if metric.name in self._metrics:
            raise ValueError(f"duplicate metric: {metric.name}")
        self._metrics[metric.name] = metric

    def counter(
        self, name: str, help: str, label: str | None = None, values: Iterable[str] = ()
    ) -> Counter:
        metric = Counter(name, help, label, values)
        self._add(metric)
        return metric

    def gauge(
        self, name: str, help: str, label: str | None = None, values: Iterable[str] = ()
    ) -> Gauge:
        metric = Gauge(name, help, label, values)
        self._add(metric)
        return metric

    def render(self) -> str:
        lines: list[str] = []
        for metric in self._metrics.values():
            lines.extend(metric.render())
        return "\n".join(lines) + "\n"


TRANSPORTS = ("ws", "http", "sse")
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
)
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


class Metrics:
    """The server's metrics. One instance per server (it lives in the transport's state)."""

    def __init__(self) -> None:
        r = self.registry = Registry()
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

    def render(self) -> str:
        return self.registry.render()
