"""Event frames: the right message in both dialects, tracked or not, however subscriptions and
events interleave (frames are cached per event and shared by subscriptions with one head)."""

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
def test_frames_carry_the_event(rounds: int) -> None:
    for _ in range(rounds):
        for event_id, payload, (envelope, expected) in itertools.product(
            EVENT_IDS, PAYLOADS, ENVELOPES
        ):
            whole = envelope.event(event_id, payload)
            assert orjson.loads(whole) == expected(event_id, orjson.loads(payload))


def test_subscriptions_with_one_head_share_one_frame_object_per_event() -> None:
    payload = b'{"shared":true}'
    first = JsonRpcEnvelope("s1", 1).event("0000000000000009", payload)
    same_head = JsonRpcEnvelope("s1", "another request").event("0000000000000009", payload)
    other_head = JsonRpcEnvelope("s2", 2).event("0000000000000009", payload)
    assert first is same_head
    assert other_head is not first
    assert orjson.loads(other_head)["params"]["subscription"] == "s2"
    trpc_first = TrpcEnvelope(1, False, "p").event("0000000000000009", payload)
    assert TrpcEnvelope(1, False, "p").event("0000000000000009", payload) is trpc_first
    assert orjson.loads(TrpcEnvelope(2, False, "p").event("0000000000000009", payload))["id"] == 2


def test_a_new_event_is_never_served_an_earlier_frame() -> None:
    envelope = JsonRpcEnvelope("s1", 1)
    first = envelope.event("0000000000000001", b'{"n":1}')
    second = envelope.event("0000000000000002", b'{"n":1}')  # equal bytes, another event
    assert orjson.loads(second)["params"]["id"] == "0000000000000002"
    again = envelope.event("0000000000000001", b'{"n":1}')  # back to the first event
    assert orjson.loads(again) == orjson.loads(first)
