"""Malformed HTTP is logged without tracebacks and throttled (CONTRACT 5a "Logs").

The start script is run as a user runs it, with its own logging set-up, and 2,000 malformed
requests arrive over raw sockets: aiohttp would log most of them with a traceback quoting the
request; the server's log holds one line per 10 s instead. A second test runs the server in
process with the filter routed to the server's metrics, as the composition root is to wire
it, and checks that `/metrics` counts every request, logged or not."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import aiohttp
import pytest

from rpc.client_errors import ClientErrorLog
from server.logs import (
    AIOHTTP_SERVER_LOGGER,
    CLIENT_ERRORS_LOGGER,
    install_client_error_filter,
    route_client_errors,
)
from tests.integration.harness import running_server
from tests.integration.server import start_server

# Not HTTP at all (aiohttp logs it at DEBUG on a connection's first request), and two that
# are nearly HTTP (logged at ERROR with a traceback that quotes the offending bytes).
MALFORMED = [
    b"GARBAGE\r\n\r\n\r\n\r\n",
    b"GET / HTTP/1.1\r\nBad Header\r\n\r\n",
    b"GET /\x00 HTTP/1.1\r\nHost: x\r\n\r\n",
]
PARALLEL = 16
TIMEOUT_S = 10.0


async def send_malformed(port: int, total: int) -> list[bytes]:
    """`total` requests, each on its own connection, at most PARALLEL at once; the status
    line of each reply (the server closes after a 400, so each read ends)."""
    replies: list[bytes] = []
    next_index = iter(range(total))

    async def worker() -> None:
        for n in next_index:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                writer.write(MALFORMED[n % len(MALFORMED)])
                reply = await asyncio.wait_for(reader.read(), TIMEOUT_S)
                replies.append(reply.split(b"\r\n", 1)[0])
            finally:
                writer.close()
                await writer.wait_closed()

    await asyncio.gather(*(worker() for _ in range(PARALLEL)))
    return replies


async def test_2000_malformed_requests_leave_a_few_lines_and_no_traceback(
    tmp_path: Path,
) -> None:
    server = await start_server(tmp_path, LOG_LEVEL="INFO")
    assert server.proc.stderr is not None
    stderr = asyncio.create_task(server.proc.stderr.read())  # drained as it is written
    try:
        started = time.monotonic()
        replies = await send_malformed(server.port, 2000)
        elapsed = time.monotonic() - started
        assert len(replies) == 2000
        assert {status.split(b" ", 1)[1] for status in replies} == {b"400 Bad Request"}
        assert await server.stop() == 0
    finally:
        if server.proc.returncode is None:
            server.proc.kill()
            await server.proc.wait()
    log = (await stderr).decode()
    assert "Traceback" not in log
    assert "Bad Header" not in log  # nothing of a request is quoted
    throttled = [line for line in log.splitlines() if CLIENT_ERRORS_LOGGER in line]
    # One line per 10 s window (the run takes a second or two; a slow machine may see more).
    assert 1 <= len(throttled) <= 1 + int(elapsed // 10) + 1, throttled
    assert '"bad_http from 127.0.0.1: malformed HTTP (' in throttled[0]
    assert len(log) < 4096, log[:4096]


async def test_metrics_count_every_malformed_request_the_log_suppresses(
    tmp_path: Path, aiohttp_server_log: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    install_client_error_filter(logging.INFO)  # as server.logs.setup() does
    async with running_server(tmp_path) as running, aiohttp.ClientSession() as http:
        # What server.main is to do once the server's metrics exist.
        errors = ClientErrorLog(
            logging.getLogger(CLIENT_ERRORS_LOGGER), count=running.state.metrics.client_errors.inc
        )
        assert route_client_errors(errors)
        replies = await send_malformed(running.port, 90)
        assert len(replies) == 90
        async with http.get(f"{running.base_url}/metrics") as resp:
            text = await resp.text()
    assert 'alertwire_client_errors_total{kind="bad_http"} 90' in text
    from_aiohttp = [r for r in caplog.records if r.name == AIOHTTP_SERVER_LOGGER]
    assert from_aiohttp == []
    (line,) = [r for r in caplog.records if r.name == CLIENT_ERRORS_LOGGER]
    assert line.exc_info is None
    assert line.getMessage().startswith("bad_http from 127.0.0.1: malformed HTTP (")
