"""server.logs: JSON lines, with anything shaped like a credential blanked as a second line of
defence (the code itself never logs tokens: tests/rpc/test_no_secrets_in_logs.py)."""

from __future__ import annotations

import logging
import sys

import orjson

from server.logs import REDACTED, JsonFormatter, redact
from tests.conftest import make_token


def record(message: str, *args: object, exc: bool = False) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise ValueError(f"bad token {make_token()}")
        except ValueError:
            exc_info = sys.exc_info()
    return logging.LogRecord("alertwire.test", logging.INFO, __file__, 1, message, args, exc_info)


def test_a_line_is_one_json_object() -> None:
    entry = orjson.loads(JsonFormatter().format(record("hello %s", "world")))
    assert entry["msg"] == "hello world"
    assert entry["level"] == "info"
    assert entry["logger"] == "alertwire.test"
    assert entry["ts"].endswith("Z")


def test_tokens_and_bearer_credentials_are_blanked() -> None:
    token = make_token()
    line = JsonFormatter().format(
        record("got %s and Authorization: Bearer abc.def", token, exc=True)
    )
    assert token not in line
    assert "abc.def" not in line
    entry = orjson.loads(line)
    assert entry["msg"] == f"got {REDACTED} and Authorization: Bearer {REDACTED}"
    assert REDACTED in entry["exc"]
    assert "ValueError: bad token" in entry["exc"]


def test_ordinary_text_is_left_alone() -> None:
    text = "closing a websocket (close code 1009) for c12 after 3 s; eyJ alone is fine"
    assert redact(text) == text
