"""Per-connection and server-wide limits, read from the environment once (CONTRACT 1).

Every limit has a clear error for the client and a counter in rpc.metrics; README's
Configuration table lists the environment variables.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Limits:
    rate_per_10s: int = 100  # requests per connection per 10 s; 0 = off
    burst: int | None = None  # bucket size; default: the 10 s allowance
    max_connections_per_user: int = 5
    max_subscriptions_per_connection: int = 50
    max_connections: int = 10_000
    max_message_bytes: int = 1_048_576
    max_json_depth: int = 32
    max_batch: int = 100  # elements of one batch; a longer batch is refused whole
    max_id_chars: int = 256  # request ids are echoed in every reply and event frame
    max_calls_in_flight: int = 32  # pipelined calls of one WebSocket running at once
    send_queue_frames: int = 4096  # frames queued for a socket before it counts as stuck
    send_queue_bytes: int = 8 * 1_048_576
    auth_timeout_s: float = 10.0
    heartbeat_interval_s: float = 25.0
    heartbeat_timeout_s: float = 60.0

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
            max_json_depth=num("MAX_JSON_DEPTH", base.max_json_depth, positive=True),
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


def rate_limiter(limits: Limits) -> TokenBucket | Unlimited:
    if limits.rate_per_10s <= 0:
        return Unlimited()
    return TokenBucket(limits.rate_per_10s, 10.0, limits.burst)


def id_too_long(value: object, limits: Limits) -> bool:
    """A string request id longer than the server will echo in every reply and event."""
    return isinstance(value, str) and len(value) > limits.max_id_chars


def json_depth_ok(value: object, max_depth: int) -> bool:
    """True when `value` nests no deeper than max_depth (iterative: no recursion limit)."""
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            if depth > max_depth:
                return False
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            if depth > max_depth:
                return False
            stack.extend((v, depth + 1) for v in item)
    return True
