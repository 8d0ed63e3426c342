"""server.logs: JSON lines, with anything shaped like a credential blanked as a second line of
defence (the code itself never logs tokens: tests/rpc/test_no_secrets_in_logs.py), and aiohttp's
records of malformed requests routed through a ClientErrorLog without their tracebacks."""

from __future__ import annotations

import logging
import sys

import orjson
from aiohttp.http_exceptions import BadHttpMessage, BadHttpMethod

from rpc.client_errors import ClientErrorLog
from server.logs import (
    AIOHTTP_SERVER_LOGGER,
    REDACTED,
    AiohttpClientErrors,
    JsonFormatter,
    install_client_error_filter,
    redact,
    route_client_errors,
)
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
    assert entry["event"] == "hello world"
    assert entry["level"] == "info"
    assert entry["logger"] == "alertwire.test"
    assert entry["time"].endswith("Z")


def test_tokens_and_bearer_credentials_are_blanked() -> None:
    token = make_token()
    line = JsonFormatter().format(
        record("got %s and Authorization: Bearer abc.def", token, exc=True)
    )
    assert token not in line
    assert "abc.def" not in line
    entry = orjson.loads(line)
    assert entry["event"] == f"got {REDACTED} and Authorization: Bearer {REDACTED}"
    assert REDACTED in entry["exc"]
    assert "ValueError: bad token" in entry["exc"]


def test_ordinary_text_is_left_alone() -> None:
    text = "closing a websocket (close code 1009) for c12 after 3 s; eyJ alone is fine"
    assert redact(text) == text


def aiohttp_record(
    exc: BaseException | None, level: int = logging.ERROR, *args: object
) -> logging.LogRecord:
    exc_info = (type(exc), exc, exc.__traceback__) if exc is not None else None
    message = "Error handling request from %s"
    return logging.LogRecord(AIOHTTP_SERVER_LOGGER, level, __file__, 1, message, args, exc_info)


class Reports(ClientErrorLog):
    """Keeps what is reported instead of throttling and logging it."""

    def __init__(self) -> None:
        super().__init__(logging.getLogger("tests.unused"))
        self.seen: list[tuple[str, str, str]] = []

    def report(self, kind: str, address: str, message: str) -> None:
        self.seen.append((kind, address, message))


def test_a_malformed_request_is_reported_and_its_traceback_dropped() -> None:
    errors = Reports()
    refused = BadHttpMessage("Invalid header token: b'Bad Header'")
    for level in (logging.ERROR, logging.DEBUG):  # aiohttp uses both (see the filter)
        assert not AiohttpClientErrors(errors).filter(aiohttp_record(refused, level, "1.2.3.4"))
    assert not AiohttpClientErrors(errors).filter(aiohttp_record(BadHttpMethod("X"), 10, None))
    assert errors.seen == [
        ("bad_http", "1.2.3.4", "malformed HTTP (BadHttpMessage)"),
        ("bad_http", "1.2.3.4", "malformed HTTP (BadHttpMessage)"),
        ("bad_http", "unknown", "malformed HTTP (BadHttpMethod)"),
    ]


def test_other_records_pass_at_the_configured_level_with_their_traceback() -> None:
    errors = Reports()
    keep = AiohttpClientErrors(errors, logging.INFO)
    bug = aiohttp_record(RuntimeError("a handler bug"), logging.ERROR, "1.2.3.4")
    assert keep.filter(bug)
    assert bug.exc_info is not None
    assert not keep.filter(aiohttp_record(None, logging.DEBUG))
    assert keep.filter(aiohttp_record(None, logging.INFO))
    assert errors.seen == []


def test_setup_installs_the_filter_once_and_routing_replaces_its_log(
    aiohttp_server_log: logging.Logger,
) -> None:
    assert not route_client_errors(ClientErrorLog(logging.getLogger("tests.unused")))
    install_client_error_filter(logging.WARNING)
    installed = install_client_error_filter(logging.WARNING)
    assert [f for f in aiohttp_server_log.filters if isinstance(f, AiohttpClientErrors)] == [
        installed
    ]
    assert aiohttp_server_log.level == logging.DEBUG
    errors = Reports()
    assert route_client_errors(errors)
    aiohttp_server_log.error(
        "Error handling request from %s", "5.6.7.8", exc_info=BadHttpMessage("x")
    )
    assert errors.seen == [("bad_http", "5.6.7.8", "malformed HTTP (BadHttpMessage)")]
