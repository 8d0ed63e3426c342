"""Per-connection and server-wide limits, read from the environment once (CONTRACT 1).

Every limit has a clear error for the client and a counter in rpc.metrics; README's
Configuration table lists the environment variables.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from rpc.addresses import Network, parse_networks


@dataclass(frozen=True, slots=True)
class Limits:
    rate_per_10s: int = 100  # requests per connection per 10 s; 0 = off
    burst: int | None = None  # bucket size; default: the 10 s allowance
    max_connections_per_user: int = 5
    max_subscriptions_per_connection: int = 50
    max_connections: int = 10_000
    max_message_bytes: int = 1_048_576
    # Before a connection or request has authenticated (CONTRACT 5a): its frames and bodies.
    max_unauthenticated_message_bytes: int = 16_384
    max_unauthenticated_connections: int = 1000  # a pool of its own, not in max_connections
    max_unauthenticated_per_address: int = 20
    max_http_connections: int = 2000  # TCP connections not (yet) a WebSocket or SSE stream
    header_timeout_s: float = 10.0
    keepalive_timeout_s: float = 75.0
    send_queue_total_bytes: int = 256 * 1_048_576  # outbound data of all connections
    sse_stall_timeout_s: float = 30.0  # an SSE stream whose writes do not drain is closed
    trusted_proxies: tuple[Network, ...] = ()
    max_json_depth: int = 32
    max_json_values: int = 10_000  # values in one message (containers and scalars)
    max_batch: int = 100  # elements of one batch; a longer batch is refused whole
    max_id_chars: int = 256  # request ids are echoed in every reply and event frame
    max_calls_in_flight: int = 32  # pipelined calls of one WebSocket running at once
    send_queue_frames: int = 4096  # frames queued for a socket before it counts as stuck
    send_queue_bytes: int = 8 * 1_048_576
    auth_timeout_s: float = 10.0
    heartbeat_interval_s: float = 25.0
    heartbeat_timeout_s: float = 60.0

    def message_limit(self, authenticated: bool) -> int:
        """The largest frame or body a connection or request may send (CONTRACT 5a)."""
        if authenticated:
            return self.max_message_bytes
        return min(self.max_unauthenticated_message_bytes, self.max_message_bytes)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Limits:
        env = os.environ if env is None else env

        def num(name: str, default: int, positive: bool = False) -> int:
            raw = env.get(name)
            if raw is None or raw.strip() == "":
                return default
            try:
                value = int(raw)
            except ValueError:
                raise ValueError(f"{name} must be a whole number") from None
            if value < 0 or (positive and value == 0):
                raise ValueError(f"{name} must be {'positive' if positive else 'non-negative'}")
            return value

        def seconds(name: str, default: float) -> float:
            raw = env.get(name)
            if raw is None or raw.strip() == "":
                return default
            try:
                value = float(raw)
            except ValueError:
                raise ValueError(f"{name} must be a number of seconds") from None
            if not 0 < value < 3600:
                raise ValueError(f"{name} must be between 0 and 3600 seconds")
            return value

        base = cls()
        return cls(
            rate_per_10s=num("RATE_LIMIT_PER_10S", base.rate_per_10s),
            max_connections_per_user=num("MAX_CONNECTIONS_PER_USER", base.max_connections_per_user),
            max_subscriptions_per_connection=num(
                "MAX_SUBSCRIPTIONS_PER_CONNECTION", base.max_subscriptions_per_connection
            ),
            max_connections=num("MAX_CONNECTIONS", base.max_connections),
            max_message_bytes=num("MAX_MESSAGE_BYTES", base.max_message_bytes)
            or base.max_message_bytes,
            max_unauthenticated_message_bytes=num(
                "MAX_UNAUTHENTICATED_MESSAGE_BYTES",
                base.max_unauthenticated_message_bytes,
                positive=True,
            ),
            max_unauthenticated_connections=num(
                "MAX_UNAUTHENTICATED_CONNECTIONS", base.max_unauthenticated_connections
            ),
            max_unauthenticated_per_address=num(
                "MAX_UNAUTHENTICATED_PER_ADDRESS", base.max_unauthenticated_per_address
            ),
            max_http_connections=num("MAX_HTTP_CONNECTIONS", base.max_http_connections),
            header_timeout_s=seconds("HEADER_TIMEOUT_SECONDS", base.header_timeout_s),
            keepalive_timeout_s=seconds("KEEPALIVE_TIMEOUT_SECONDS", base.keepalive_timeout_s),
            send_queue_total_bytes=num(
                "SEND_QUEUE_TOTAL_BYTES", base.send_queue_total_bytes, positive=True
            ),
            trusted_proxies=parse_networks(env.get("TRUSTED_PROXIES", "")),
            max_json_depth=num("MAX_JSON_DEPTH", base.max_json_depth, positive=True),
            max_json_values=num("MAX_JSON_VALUES", base.max_json_values, positive=True),
            max_batch=num("MAX_BATCH_SIZE", base.max_batch, positive=True),
            max_calls_in_flight=num("MAX_CALLS_IN_FLIGHT", base.max_calls_in_flight, positive=True),
            send_queue_frames=num("SEND_QUEUE_FRAMES", base.send_queue_frames, positive=True),
            send_queue_bytes=num("SEND_QUEUE_BYTES", base.send_queue_bytes, positive=True),
            auth_timeout_s=seconds("AUTH_TIMEOUT_SECONDS", base.auth_timeout_s),
        )


class TokenBucket:
    """`rate` tokens per `period` seconds, holding at most `burst`. PING is not counted."""

    __slots__ = ("_clock", "_last", "_per_second", "_tokens", "burst")

    def __init__(
        self,
        rate: int,
        period: float,
        burst: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.burst = float(burst if burst is not None else rate)
        self._per_second = rate / period
        self._tokens = self.burst
        self._clock = clock
        self._last = clock()

    def take(self, n: int = 1) -> bool:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self._per_second)
        self._last = now
        if self._tokens >= n:
            self._tokens -= n
            return True
        return False


class Unlimited:
    __slots__ = ()

    def take(self, n: int = 1) -> bool:
        return True


class RateLimiter(Protocol):
    def take(self, n: int = 1) -> bool: ...


class Prepaid:
    """A bucket whose first request was paid for on arrival: an HTTP request without a valid
    token is charged before its body is read (so a flood of refused bodies costs the flooder
    its allowance, not the server its loop), and its first call is not charged twice."""

    __slots__ = ("_bucket", "_paid")

    def __init__(self, bucket: RateLimiter) -> None:
        self._bucket = bucket
        self._paid = True

    def take(self, n: int = 1) -> bool:
        if self._paid and n > 0:
            self._paid = False
            n -= 1
        return n <= 0 or self._bucket.take(n)


def rate_limiter(limits: Limits) -> TokenBucket | Unlimited:
    if limits.rate_per_10s <= 0:
        return Unlimited()
    return TokenBucket(limits.rate_per_10s, 10.0, limits.burst)


def id_too_long(value: object, limits: Limits) -> bool:
    """A string request id longer than the server will echo in every reply and event."""
    return isinstance(value, str) and len(value) > limits.max_id_chars


class AnonymousPlace:
    """One connection's place in the anonymous pool, until it authenticates or closes."""

    __slots__ = ("address", "evict", "evicted")

    def __init__(self, address: str) -> None:
        self.address = address
        self.evict: Callable[[], None] | None = None  # set once there is a connection to close
        self.evicted = False


class AnonymousPool:
    """Connections that have not authenticated yet: `MAX_UNAUTHENTICATED_CONNECTIONS` in all,
    `MAX_UNAUTHENTICATED_PER_ADDRESS` from one client address. A pool of their own, so that
    however many of them an attacker opens, an authenticated user is never refused for it.

    Past the per-address cap a newcomer is refused. Past the total, the OLDEST place is taken
    back (its connection closed, 1013) and the newcomer admitted: a client that authenticates
    right after its upgrade (the official tRPC client sends its token as the first message)
    needs its place for milliseconds, so however many addresses flood the pool, it still gets
    in; only sockets that sit there without authenticating are pushed out."""

    def __init__(
        self, total: int, per_address: int, count: Callable[[str], None] | None = None
    ) -> None:
        self.total = total
        self.per_address = per_address
        self._count = count  # the refusal counter, told of every place taken back
        self._by_address: dict[str, int] = {}
        self._places: dict[AnonymousPlace, None] = {}  # in order of admission: oldest first

    @property
    def open(self) -> int:
        return len(self._places)

    def admit(self, address: str) -> AnonymousPlace | str:
        """A place for `address`, or why not ("anonymous_per_address", the metric's refusal
        reason). 0 turns a cap off."""
        held = self._by_address.get(address, 0)
        if self.per_address and held >= self.per_address:
            return "anonymous_per_address"
        if self.total and len(self._places) >= self.total:
            self._take_back(next(iter(self._places)))
        place = AnonymousPlace(address)
        self._places[place] = None
        self._by_address[address] = self._by_address.get(address, 0) + 1
        return place

    def release(self, place: AnonymousPlace) -> None:
        """The connection authenticated or closed. Idempotent."""
        if self._places.pop(place, 0) is None:
            held = self._by_address.get(place.address, 0) - 1
            if held <= 0:
                self._by_address.pop(place.address, None)
            else:
                self._by_address[place.address] = held

    def _take_back(self, place: AnonymousPlace) -> None:
        self.release(place)
        place.evicted = True
        if self._count is not None:
            self._count("anonymous_evicted")
        if place.evict is not None:
            place.evict()
