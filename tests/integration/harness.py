"""An in-process server on a real port, assembled exactly as the start script does, with a
JSON-RPC client that keeps replies and subscription events apart."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from rpc.auth import issue_token
from server import config as server_config
from server.main import Running, start, stop

SECRET = "integration-secret-0123456789abcdefghij"


def config_for(tmp_path: Path, **env: str) -> server_config.ServerConfig:
    base = {
        "WEBSOCKET_PORT": "0",
        "DATABASE_URL": f"sqlite:///{tmp_path}/alertwire.db",
        "JWT_SECRET": SECRET,
        "ALERTWIRE_DATA_DIR": str(tmp_path / "data"),
        "RATE_LIMIT_PER_10S": "0",
        "MAX_CONNECTIONS_PER_USER": "0",
    }
    return server_config.load({**base, **env})


@asynccontextmanager
async def running_server(tmp_path: Path, **env: str) -> AsyncIterator[Running]:
    running = await start(config_for(tmp_path, **env))
    try:
        yield running
    finally:
        await stop(running)


def token(
    sub: str = "nurse-1", role: str = "nurse", hospitals: list[str] | None = None, ttl: float = 3600
) -> str:
    from rpc.auth import AuthConfig

    return issue_token(
        AuthConfig(SECRET),
        sub=sub,
        role=role,
        hospitals=["h1"] if hospitals is None else hospitals,
        ttl_seconds=ttl,
        now=time.time(),
    )


class RpcClient:
    """JSON-RPC 2.0 over one WebSocket: `call` awaits the reply by id; subscription
    notifications go to a queue per subscription id, in arrival order."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self._next = 0
        self._pending: dict[Any, asyncio.Future[Any]] = {}
        self.events: dict[str, asyncio.Queue[dict[str, Any]]] = {}
        self.log: list[Any] = []  # every frame, in order
        self._batches: list[asyncio.Future[list[Any]]] = []  # replies to batches, in order
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def connect(cls, http: aiohttp.ClientSession, running: Running, bearer: str) -> RpcClient:
        ws = await http.ws_connect(
            f"ws://127.0.0.1:{running.port}/api/trpc",
            headers={"Authorization": f"Bearer {bearer}"},
        )
        return cls(ws)

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type is not aiohttp.WSMsgType.TEXT:
                continue
            frame = orjson.loads(msg.data)
            self.log.append(frame)
            if isinstance(frame, list) and self._batches:
                self._batches.pop(0).set_result(frame)
            elif isinstance(frame, dict) and frame.get("id") in self._pending:
                self._pending.pop(frame["id"]).set_result(frame)
            elif isinstance(frame, dict) and frame.get("method") in (
                "subscription",
                "subscription.end",
            ):
                sid = frame["params"]["subscription"]
                self.events.setdefault(sid, asyncio.Queue()).put_nowait(frame)

    async def raw(self, method: str, params: Any = None) -> dict[str, Any]:
        self._next += 1
        request_id = self._next
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        request: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            request["params"] = params
        await self.ws.send_str(orjson.dumps(request).decode())
        return dict(await asyncio.wait_for(future, 10))

    async def batch(self, requests: list[dict[str, Any]]) -> list[Any]:
        """Send a JSON-RPC batch as one frame; its reply (one array frame)."""
        future: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self._batches.append(future)
        await self.ws.send_str(orjson.dumps(requests).decode())
        return await asyncio.wait_for(future, 10)

    async def call(self, method: str, params: Any = None) -> Any:
        reply = await self.raw(method, params)
        assert "result" in reply, reply
        return reply["result"]

    async def subscribe(self, method: str, params: Any) -> str:
        sid = str((await self.call(method, params))["subscription"])
        self.events.setdefault(sid, asyncio.Queue())
        return sid

    async def next_event(self, sid: str) -> dict[str, Any]:
        frame = await asyncio.wait_for(self.events[sid].get(), 10)
        assert frame["method"] == "subscription", frame
        return dict(frame["params"])

    def pending_events(self, sid: str) -> int:
        return self.events[sid].qsize()

    async def close(self) -> None:
        await self.ws.close()
        self._reader.cancel()
