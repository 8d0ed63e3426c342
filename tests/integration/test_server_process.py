"""The start script as a user runs it: health, both dialects, graceful shutdown."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import aiohttp
import orjson
import pytest

from tests.integration.server import START, start_server


async def test_starts_with_no_configuration_and_shuts_down_gracefully(tmp_path: Path) -> None:
    server = await start_server(tmp_path)
    try:
        assert "development mode" in server.banner
        assert (tmp_path / "data" / "dev_jwt_secret").stat().st_mode & 0o777 == 0o600
        async with aiohttp.ClientSession() as http:
            async with http.get(server.url + "/health") as resp:
                assert resp.status == 200
                assert (await resp.json())["status"] == "ok"
            jsonrpc_ws = await http.ws_connect(server.ws_url)
            trpc_ws = await http.ws_connect(server.ws_url)
            await trpc_ws.send_str('{"id":1,"method":"query","params":{"path":"system.ping"}}')
            assert orjson.loads((await trpc_ws.receive(timeout=5)).data)["result"]["data"] == "pong"
            await jsonrpc_ws.send_str('{"jsonrpc":"2.0","method":"system.ping","id":1}')
            assert orjson.loads((await jsonrpc_ws.receive(timeout=5)).data)["result"] == "pong"

            server.send_signal(signal.SIGTERM)
            notice = orjson.loads((await jsonrpc_ws.receive(timeout=5)).data)
            assert notice == {"jsonrpc": "2.0", "method": "server.reconnect"}
            assert orjson.loads((await trpc_ws.receive(timeout=5)).data) == {
                "id": None,
                "method": "reconnect",
            }
            closing = await trpc_ws.receive(timeout=5)
            assert closing.type is aiohttp.WSMsgType.CLOSE
            assert closing.data == 1012
            closing = await jsonrpc_ws.receive(timeout=5)
            assert closing.data == 1012
        assert await server.stop(wait_s=10) == 0
    finally:
        if server.proc.returncode is None:
            server.proc.kill()
            await server.proc.wait()


async def test_sigint_also_exits_cleanly(tmp_path: Path) -> None:
    server = await start_server(tmp_path)
    assert await server.stop(signal.SIGINT) == 0


async def test_production_without_secret_refuses_to_start(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "JWT_SECRET"}
    env["ALERTWIRE_ENV"] = "production"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(START),
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 2
    assert b"JWT_SECRET" in err
    assert not (tmp_path / "data" / "dev_jwt_secret").exists()


@pytest.mark.parametrize("secret", ["short"])
async def test_weak_secret_is_refused(tmp_path: Path, secret: str) -> None:
    env = {**os.environ, "JWT_SECRET": secret}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(START),
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 2
    assert b"at least 32 bytes" in err
    assert secret.encode() not in err
