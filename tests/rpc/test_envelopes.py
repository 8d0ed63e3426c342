"""Event frames given as two parts (the subscription's head, the tail every subscriber shares)
are the same bytes as the whole frame, in both dialects, tracked or not, whatever the order in
which subscriptions and events interleave."""

from __future__ import annotations

import itertools

import orjson
import pytest

from rpc.jsonrpc import JsonRpcEnvelope
from rpc.trpc import TrpcEnvelope

ENVELOPES: list[JsonRpcEnvelope | TrpcEnvelope] = [
    JsonRpcEnvelope("s1", 7),
    JsonRpcEnvelope("s2", "req-x"),
    TrpcEnvelope(3, False, "healthcare.subscribeToAlerts"),
    TrpcEnvelope("a", True, "healthcare.subscribeToMetrics"),
]
PAYLOADS = [b'{"n":1}', b'{"n":2,"text":"\\u00e9"}', b"[]"]
EVENT_IDS = [None, "0000000000000001", "0000000000000002"]


@pytest.mark.parametrize("rounds", [1, 3])
def test_the_two_parts_join_to_the_whole_frame(rounds: int) -> None:
    for _ in range(rounds):
        for event_id, payload, envelope in itertools.product(EVENT_IDS, PAYLOADS, ENVELOPES):
            head, tail = envelope.event_parts(event_id, payload)
            whole = envelope.event(event_id, payload)
            assert head + tail == whole
            orjson.loads(whole)  # and it is one JSON document


def test_every_subscriber_of_an_event_shares_one_tail_object() -> None:
    payload = b'{"shared":true}'
    first = JsonRpcEnvelope("s1", 1).event_parts("0000000000000009", payload)[1]
    second = JsonRpcEnvelope("s2", 2).event_parts("0000000000000009", payload)[1]
    assert first is second
