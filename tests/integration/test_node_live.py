"""Node clients against a real server (the start script, on a free port): the official
@trpc/client 11 over httpLink/httpBatchLink/wsLink, and the Alertwire client through a TCP proxy
the test controls (network cut, WebSocket upgrades refused -> HTTP polling -> back)."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import jwt
import pytest

from routers.app import app_router
from tests.client_gen import node_tools
from tests.integration.server import ServerProcess, start_server

pytestmark = [pytest.mark.node, pytest.mark.slow]

SECRET = "node-live-secret-0123456789abcdefghijklmnop"
LIVE = node_tools.PACKAGE / "dist" / "test" / "live"


def mint(sub: str, role: str, hospitals: list[str], ttl_s: int = 3600) -> str:
    claims = {"sub": sub, "role": role, "hospitals": hospitals, "exp": int(time.time()) + ttl_s}
    return jwt.encode(claims, SECRET, algorithm="HS256")


@pytest.fixture(scope="module")
def node() -> str:
    node = node_tools.install()
    node_tools.build(node)
    return node


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[ServerProcess]:
    process = await start_server(
        tmp_path,
        JWT_SECRET=SECRET,
        DATABASE_URL=f"sqlite:///{tmp_path}/alertwire.db",
        ALERTWIRE_DATA_DIR=str(tmp_path / "data"),
        RATE_LIMIT_PER_10S="0",
        MAX_CONNECTIONS_PER_USER="0",
    )
    try:
        yield process
    finally:
        await process.stop()


async def run_live(node: str, server: ServerProcess, script: str) -> None:
    env = {
        **os.environ,
        "ALERTWIRE_URL": f"{server.url}/api/trpc",
        "ALERTWIRE_NURSE_TOKEN": mint("nurse-live", "nurse", ["h1"]),
        "ALERTWIRE_ADMIN_TOKEN": mint("admin-live", "admin", ["h1"]),
    }
    proc = await asyncio.create_subprocess_exec(
        node,
        "--test",
        str(LIVE / script),
        cwd=node_tools.PACKAGE,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 180)
    text = out.decode()
    assert proc.returncode == 0, text[-8000:]
    assert "# skipped 0" in text, text[-4000:]


async def test_official_trpc_client(node: str, server: ServerProcess) -> None:
    await run_live(node, server, "official.live.js")


async def test_alertwire_client(node: str, server: ServerProcess) -> None:
    await run_live(node, server, "alertwire.live.js")


async def test_alert_stream_resume_and_polling_fallback(node: str, server: ServerProcess) -> None:
    """Network cut and refused upgrades: exactly the missed alerts arrive, once each."""
    if app_router.get("healthcare.createAlert") is None:
        pytest.skip("the application router has no healthcare procedures yet")
    await run_live(node, server, "alerts.live.js")
