"""clients/typescript/examples/node, as a new user would run it: a separate npm project that
depends on the built package by path, compiled with tsc (ESM, NodeNext) and run with Node
against the real server (the start script on a free port). Every step of it must print its
line: the official client over WebSocket (`ws`) and SSE (`eventsource`), typed field errors,
and the Alertwire client over its WebSocket and HTTP only."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.client_gen import node_tools
from tests.integration.server import ServerProcess, start_server
from tests.integration.test_node_live import SECRET, mint

pytestmark = [pytest.mark.node, pytest.mark.slow]

EXAMPLE = node_tools.PACKAGE / "examples" / "node"
STAMP = EXAMPLE / "node_modules" / ".alertwire-lock-sha256"
STEPS = ["trpc-websocket", "trpc-sse", "field-errors", "alertwire-websocket", "alertwire-http-only"]


def npm(*args: str) -> subprocess.CompletedProcess[str]:
    _, npm_path = node_tools.require_node()
    return subprocess.run(
        [npm_path, *args], cwd=EXAMPLE, capture_output=True, text=True, timeout=600, check=False
    )


@pytest.fixture(scope="module")
def example() -> str:
    """The package built, then the example installed (`npm ci`, once per lock) and compiled."""
    node = node_tools.install()
    node_tools.build(node)
    digest = hashlib.sha256((EXAMPLE / "package-lock.json").read_bytes()).hexdigest()
    if not STAMP.exists() or STAMP.read_text() != digest:
        result = npm("ci", "--no-audit", "--no-fund")
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        STAMP.write_text(digest)
    result = npm("run", "build")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    return node


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[ServerProcess]:
    process = await start_server(
        tmp_path,
        JWT_SECRET=SECRET,
        DATABASE_URL=f"sqlite:///{tmp_path}/alertwire.db",
        ALERTWIRE_DATA_DIR=str(tmp_path / "data"),
    )
    try:
        yield process
    finally:
        await process.stop()


async def test_the_node_example_runs_every_step_against_the_server(
    example: str, server: ServerProcess
) -> None:
    env = {
        **os.environ,
        "ALERTWIRE_URL": f"{server.url}/api/trpc",
        "ALERTWIRE_TOKEN": mint("nurse-example", "nurse", ["h1"]),
    }
    proc = await asyncio.create_subprocess_exec(
        example,
        "dist/main.js",
        cwd=EXAMPLE,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, out.decode()[-3000:] + err.decode()[-3000:]
    lines = [json.loads(line) for line in out.decode().splitlines()]
    assert [line["step"] for line in lines] == STEPS
    by_step = {line["step"]: line for line in lines}
    event_ids = [by_step[s]["eventId"] for s in STEPS if s != "field-errors"]
    assert event_ids == sorted(event_ids)
    assert len(set(event_ids)) == 4
    assert by_step["field-errors"] == {
        "step": "field-errors",
        "code": "BAD_REQUEST",
        "fields": ["title"],
    }
    assert by_step["alertwire-websocket"]["status"] == "open"
    assert by_step["alertwire-http-only"]["status"] == "polling"
