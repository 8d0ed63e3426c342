"""Event frames, whole or as two parts (the subscription's head, the tail every subscriber
shares): the right message in both dialects, tracked or not, however subscriptions and events
interleave (the shared tails are cached per event)."""

from __future__ import annotations

import itertools
from typing import Any

import orjson
import pytest

from rpc.jsonrpc import JsonRpcEnvelope
from rpc.trpc import TrpcEnvelope

PAYLOADS = [b'{"n":1}', b'{"n":2,"text":"\\u00e9"}', b"[]"]
EVENT_IDS = [None, "0000000000000001", "0000000000000002"]


def jsonrpc_expected(sid: str, event_id: str | None, data: Any) -> Any:
    params = {"subscription": sid, "data": data}
    if event_id is not None:
        params["id"] = event_id
    return {"jsonrpc": "2.0", "method": "subscription", "params": params}


def trpc_expected(request_id: Any, echo: bool, event_id: str | None, data: Any) -> Any:
    result: dict[str, Any] = {"type": "data", "data": data}
    if event_id is not None:
        result = {"type": "data", "id": event_id, "data": {"id": event_id, "data": data}}
    frame: dict[str, Any] = {"id": request_id, "result": result}
    if echo:
        frame["jsonrpc"] = "2.0"
    return frame


ENVELOPES: list[tuple[JsonRpcEnvelope | TrpcEnvelope, Any]] = [
    (JsonRpcEnvelope("s1", 7), lambda eid, data: jsonrpc_expected("s1", eid, data)),
    (JsonRpcEnvelope("s2", "req-x"), lambda eid, data: jsonrpc_expected("s2", eid, data)),
    (
        TrpcEnvelope(3, False, "healthcare.subscribeToAlerts"),
        lambda eid, data: trpc_expected(3, False, eid, data),
    ),
    (
        TrpcEnvelope("a", True, "healthcare.subscribeToMetrics"),
        lambda eid, data: trpc_expected("a", True, eid, data),
    ),
]


@pytest.mark.parametrize("rounds", [1, 3])
def test_frames_carry_the_event_and_the_parts_join_to_the_whole(rounds: int) -> None:
    for _ in range(rounds):
        for event_id, payload, (envelope, expected) in itertools.product(
            EVENT_IDS, PAYLOADS, ENVELOPES
        ):
            head, tail = envelope.event_parts(event_id, payload)
            whole = envelope.event(event_id, payload)
            assert head + tail == whole
            assert orjson.loads(whole) == expected(event_id, orjson.loads(payload))


def test_every_subscriber_of_an_event_shares_one_tail_object() -> None:
    payload = b'{"shared":true}'
    first = JsonRpcEnvelope("s1", 1).event_parts("0000000000000009", payload)[1]
    second = JsonRpcEnvelope("s2", 2).event_parts("0000000000000009", payload)[1]
    assert first is second
