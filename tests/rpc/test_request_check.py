"""The fast request check never lets through what jsonrpcserver's schema refuses, and it does
vouch for the requests clients actually send (or it would save nothing)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonrpcserver.main import default_validator

from rpc.jsonrpc import plainly_valid
from tests.rpc.test_session_fuzz import json_values


def schema_accepts(message: Any) -> bool:
    try:
        default_validator(message)
    except Exception:
        return False
    return True


near_requests = st.fixed_dictionaries(
    {},
    optional={
        "jsonrpc": st.sampled_from(["2.0", "1.0", 2.0, 2, None, True]) | json_values,
        "method": st.sampled_from(["system.ping", ""]) | json_values,
        "id": st.sampled_from([1, -1, 1.5, 2**70, "a", None, True, False]) | json_values,
        "params": json_values,
        "extra": json_values,
        "result": json_values,
    },
)


@settings(max_examples=1500)
@given(near_requests | json_values)
def test_what_the_fast_check_vouches_for_the_schema_accepts(message: Any) -> None:
    if plainly_valid(message):
        assert schema_accepts(message), message


@pytest.mark.parametrize(
    "message",
    [
        {"jsonrpc": "2.0", "method": "healthcare.createAlert", "params": {"a": 1}, "id": 1},
        {"jsonrpc": "2.0", "method": "subtract", "params": [42, 23], "id": "abc"},
        {"jsonrpc": "2.0", "method": "update", "params": [1, 2]},  # a notification
        {"jsonrpc": "2.0", "method": "system.ping", "id": None},
        {"jsonrpc": "2.0", "method": "system.ping", "id": 1.5},
    ],
)
def test_the_requests_clients_send_take_the_fast_path(message: Any) -> None:
    assert plainly_valid(message)
    assert schema_accepts(message)


@pytest.mark.parametrize(
    "message",
    [
        {"jsonrpc": "2.0", "method": "x", "id": True},  # a boolean is no id
        {"jsonrpc": "2.0", "method": "x", "params": "text"},
        {"jsonrpc": "2.0", "method": 1},
        {"jsonrpc": 2.0, "method": "x"},
        {"jsonrpc": "2.0", "method": "x", "extra": 1},
        {"method": "x"},
        [{"jsonrpc": "2.0", "method": "x"}],
    ],
)
def test_anything_else_is_left_to_the_schema(message: Any) -> None:
    assert not plainly_valid(message)
