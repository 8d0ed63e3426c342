"""Log lines of a request (rpc.log_context, server.logs): one JSON object per line naming the
node, request id, connection, user, procedure, duration and outcome; the request id comes from a
plain `X-Request-Id` or is generated, and is echoed in the response; nothing of a token, a note
or a patient's identifiers reaches a line, whatever the request carried; LOG_FORMAT=text gives
the same fields for a terminal."""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import orjson
import pytest

from rpc import log_context
from server import logs
from tests.integration.harness import RpcClient, running_server, token
from tests.integration.test_alerts_wire import enc

GENERATED = re.compile(r"[0-9a-f]{32}")


class Lines(logging.Handler):
    """Formats each record as it is emitted (in the emitting task's context, as the stderr
    handler does) and keeps the text."""

    def __init__(self, formatter: logging.Formatter) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(formatter)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@contextlib.contextmanager
def captured(fmt: str = "json") -> Iterator[Lines]:
    root = logging.getLogger()
    handler = Lines(logs.formatter(fmt, node="node-t"))
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def parsed(handler: Lines) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in handler.lines]


def test_request_ids_are_kept_only_when_short_and_plain() -> None:
    assert log_context.request_id("abc-123_X.y:z") == "abc-123_X.y:z"
    for bad in (None, "", "a" * 65, "has space", "new\nline", 'quote"', "ünï"):
        assert GENERATED.fullmatch(log_context.request_id(bad)), bad


async def test_every_line_of_a_call_names_its_request_connection_user_and_procedure(
    tmp_path: Path,
) -> None:
    bearer = token("nurse-7", "nurse", ["h1"])
    async with running_server(tmp_path) as running, aiohttp.ClientSession() as http:
        with captured() as found:
            async with http.get(
                f"http://127.0.0.1:{running.port}/api/trpc/healthcare.listAlerts"
                f"?input={enc({'hospitalId': 'h1'})}",
                headers={"Authorization": f"Bearer {bearer}", "X-Request-Id": "req-42"},
            ) as resp:
                assert resp.status == 200
                assert resp.headers["X-Request-Id"] == "req-42"
        calls = [e for e in parsed(found) if e["event"] == "call"]
        assert len(calls) == 1
        call = calls[0]
        assert call["request_id"] == "req-42"
        assert call["procedure"] == "healthcare.listAlerts"
        assert call["user_id"] == "nurse-7"
        assert call["outcome"] == "ok"
        assert call["node"] == "node-t"
        assert isinstance(call["duration_ms"], float)
        assert str(call["connection_id"]).startswith("c")
        assert {"time", "level", "logger"} <= call.keys()
        # A request id that is not plain is replaced; the WebSocket keeps its handshake's.
        with captured() as found:
            ws = await http.ws_connect(
                f"ws://127.0.0.1:{running.port}/api/trpc",
                headers={"Authorization": f"Bearer {bearer}", "X-Request-Id": "bad id!"},
            )
            rid = ws._response.headers["X-Request-Id"]
            assert GENERATED.fullmatch(rid)
            client = RpcClient(ws)
            await client.call("system.whoami")
            await client.raw("healthcare.getAlert", {"alertId": "nope"})
            await client.close()
        lines = [e for e in parsed(found) if e["event"] == "call"]
        assert [(e["procedure"], e["outcome"]) for e in lines] == [
            ("system.whoami", "ok"),
            ("healthcare.getAlert", "NOT_FOUND"),
        ]
        assert {e["request_id"] for e in lines} == {rid}


async def test_no_token_note_or_patient_identifier_reaches_a_line(tmp_path: Path) -> None:
    bearer = token("nurse-7", "admin", ["h1"])
    patient, note = "MRN-99381-PT", "Mrs Jane Roe in bed 4 fell, family notified"
    alert = {
        "hospitalId": "h1",
        "type": "fall",
        "priority": "high",
        "title": "Fall in room 12",
        "message": note,
        "patientId": patient,
        "location": "Ward 3, bed 4",
    }
    async with running_server(tmp_path) as running, aiohttp.ClientSession() as http:
        with captured("json") as as_json, captured("text") as as_text:
            client = await RpcClient.connect(http, running, bearer)
            created = await client.call("healthcare.createAlert", alert)
            await client.raw("healthcare.createAlert", {**alert, "priority": "bogus"})
            await client.raw("auth.authenticate", {"token": bearer + "x"})
            await client.call("admin.revokeTokens", {"sub": "someone-else"})
            await client.call("healthcare.getAlert", {"alertId": created["id"]})
            await client.close()
            async with http.post(
                f"http://127.0.0.1:{running.port}/api/trpc/healthcare.createAlert",
                data=orjson.dumps({**alert, "patientId": patient + "-2"}),
                headers={"Authorization": f"Bearer {bearer}", "Content-Type": "application/json"},
            ) as resp:
                assert resp.status == 200
    text = "\n".join(as_json.lines + as_text.lines)
    assert "call" in text  # the run logged its calls
    assert "revoked a user's tokens" in text
    for secret in (bearer, bearer.split(".")[1], patient, note, "Jane Roe", "Ward 3, bed 4"):
        assert secret not in text
    assert "Bearer " not in text


def test_the_text_format_has_the_same_fields_for_a_terminal() -> None:
    formatter = logs.formatter("text", node="node-t")
    bound = log_context.bind(request_id="r-1", user_id="u-1", procedure="system.ping")
    try:
        record = logging.LogRecord("alertwire.calls", logging.INFO, __file__, 1, "call", (), None)
        record.outcome = "ok"
        record.duration_ms = 1.23456
        line = formatter.format(record)
    finally:
        log_context.reset(bound)
    assert line.endswith(
        "INFO    alertwire.calls: call  "
        "[node=node-t request_id=r-1 user_id=u-1 procedure=system.ping duration_ms=1.235 "
        "outcome=ok]"
    )
    with pytest.raises(ValueError, match="LOG_FORMAT"):
        logs.formatter("xml")


async def test_every_line_a_request_causes_carries_its_request_id(tmp_path: Path) -> None:
    admin = token("admin-1", "admin", ["h1"])
    async with running_server(tmp_path) as running, aiohttp.ClientSession() as http:
        with captured() as found:
            async with http.post(
                f"http://127.0.0.1:{running.port}/api/trpc/admin.revokeTokens",
                data=orjson.dumps({"sub": "nurse-3"}),
                headers={
                    "Authorization": f"Bearer {admin}",
                    "Content-Type": "application/json",
                    "X-Request-Id": "rq-7",
                },
            ) as resp:
                assert resp.status == 200
                assert resp.headers["X-Request-Id"] == "rq-7"
    ours = [e for e in parsed(found) if str(e["logger"]).startswith("alertwire")]
    assert {e["event"] for e in ours} >= {"call", "admin admin-1 revoked a user's tokens: nurse-3"}
    assert all(e.get("request_id") == "rq-7" for e in ours), ours
    assert all(e.get("user_id") == "admin-1" for e in ours), ours
