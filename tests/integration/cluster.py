"""Several node processes on one PostgreSQL schema, and subscribers of hospital h1's alert
stream in each dialect (JSON-RPC and tRPC over WebSocket, SSE), for the cluster tests.

A `Watcher` records every event it receives as (event id, alert id) and can follow the stream
to another node from the last event it got, as a client whose node died does.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Protocol

import aiohttp
import orjson

from tests.integration.harness import SECRET, token
from tests.integration.server import ServerProcess, start_server
from tests.polling import until
from tests.postgres import fetch
from tests.rpc.wire import enc

PROCEDURE = "healthcare.subscribeToAlerts"
DIALECTS = ("jsonrpc", "trpc", "sse")


class Endpoint(Protocol):
    """Where clients connect: a node, or a load balancer in front of several."""

    @property
    def url(self) -> str: ...

    @property
    def ws_url(self) -> str: ...


def node_env(database_url: str, name: str, **extra: str) -> dict[str, str]:
    return {
        "DATABASE_URL": database_url,
        "JWT_SECRET": SECRET,
        "NODE_ID": name,
        "RATE_LIMIT_PER_10S": "0",
        "MAX_CONNECTIONS_PER_USER": "0",
        **extra,
    }


@contextlib.asynccontextmanager
async def cluster(
    tmp_path: Path, database_url: str, count: int, **extra: str
) -> AsyncIterator[list[ServerProcess]]:
    """`count` nodes on one database; whatever is still running at the end is killed."""
    nodes: list[ServerProcess] = []
    try:
        for n in range(count):
            nodes.append(await start_node(tmp_path, database_url, n, **extra))
        yield nodes
    finally:
        for node in nodes:
            await kill(node)


async def start_node(tmp_path: Path, database_url: str, n: int, **extra: str) -> ServerProcess:
    workdir = tmp_path / f"node-{n}"
    workdir.mkdir(exist_ok=True)
    return await start_server(workdir, **node_env(database_url, f"node-{n}", **extra))


async def kill(node: ServerProcess) -> None:
    if node.proc.returncode is None:
        node.proc.kill()
    await asyncio.wait_for(node.proc.wait(), 10)


async def logged(database_url: str, hospital: str = "h1") -> list[tuple[str, str]]:
    """The hospital's stream as the log holds it: (event id, alert id), in order."""
    rows = await fetch(
        database_url,
        "SELECT seq, alert_id FROM events WHERE hospital_id = ? ORDER BY seq",
        hospital,
    )
    return [(f"{seq:016d}", alert_id) for seq, alert_id in rows]


class Watcher:
    def __init__(self, http: aiohttp.ClientSession, dialect: str, name: str) -> None:
        self.http = http
        self.dialect = dialect
        self.bearer = token(name, "nurse", ["h1"])
        self.events: list[tuple[str, str]] = []
        self.ended = asyncio.Event()
        self._closer: Any = None
        self._reader: asyncio.Task[None] | None = None

    @property
    def last_id(self) -> str | None:
        return self.events[-1][0] if self.events else None

    async def follow(self, node: Endpoint, last_event_id: str | None = None) -> None:
        """Subscribe on `node`, from `last_event_id` or the last event received (if any)."""
        await self.close()
        self.ended = asyncio.Event()
        since = last_event_id or self.last_id
        if self.dialect == "sse":
            await self._sse(node, since)
        else:
            await self._websocket(node, since)

    def record(self, event_id: str, event: dict[str, Any]) -> None:
        if event.get("type") != "stream.reset":
            self.events.append((event_id, str(event["alertId"])))

    async def _websocket(self, node: Endpoint, since: str | None) -> None:
        ws = await self.http.ws_connect(
            node.ws_url, headers={"Authorization": f"Bearer {self.bearer}"}
        )
        self._closer = ws.close
        params: dict[str, Any] = {"hospitalId": "h1"}
        if self.dialect == "jsonrpc":
            if since is not None:
                params["lastEventId"] = since
            request: dict[str, Any] = {"jsonrpc": "2.0", "id": 1, "method": PROCEDURE}
            request["params"] = params
        else:
            request = {"id": 1, "method": "subscription", "params": {"path": PROCEDURE}}
            request["params"]["input"] = params
            if since is not None:
                request["params"]["lastEventId"] = since
        started = asyncio.get_running_loop().create_future()
        self._reader = asyncio.create_task(self._read_websocket(ws, started))
        await ws.send_str(orjson.dumps(request).decode())
        reply = await asyncio.wait_for(started, 10)
        assert "result" in reply, reply

    async def _read_websocket(
        self, ws: aiohttp.ClientWebSocketResponse, started: asyncio.Future[Any]
    ) -> None:
        try:
            async for msg in ws:
                if msg.type is not aiohttp.WSMsgType.TEXT:
                    continue
                frame = orjson.loads(msg.data)
                if frame.get("id") == 1 and not started.done():
                    started.set_result(frame)
                elif self.dialect == "jsonrpc" and frame.get("method") == "subscription":
                    self.record(frame["params"]["id"], frame["params"]["data"])
                elif self.dialect == "trpc" and frame.get("result", {}).get("type") == "data":
                    self.record(frame["result"]["id"], frame["result"]["data"]["data"])
        finally:
            if not started.done():
                started.set_exception(ConnectionError("closed before the subscription started"))
            self.ended.set()

    async def _sse(self, node: Endpoint, since: str | None) -> None:
        url = (
            f"{node.url}/api/trpc/{PROCEDURE}?connectionParams={enc({'token': self.bearer})}"
            f"&input={enc({'hospitalId': 'h1'})}"
        )
        headers = {"Accept": "text/event-stream"}
        if since is not None:
            headers["Last-Event-ID"] = since
        resp = await self.http.get(url, headers=headers)
        assert resp.status == 200, resp.status

        async def close() -> None:
            resp.close()

        self._closer = close
        connected = asyncio.get_running_loop().create_future()
        self._reader = asyncio.create_task(self._read_sse(resp, connected))
        await asyncio.wait_for(connected, 10)

    async def _read_sse(
        self, resp: aiohttp.ClientResponse, connected: asyncio.Future[None]
    ) -> None:
        fields: dict[str, str] = {}
        try:
            async for raw in resp.content:
                line = raw.decode().rstrip("\n")
                if line:
                    name, _, value = line.partition(": ")
                    fields[name] = value
                    continue
                if fields.get("event") == "connected" and not connected.done():
                    connected.set_result(None)
                elif "data" in fields and "id" in fields:
                    self.record(fields["id"], orjson.loads(fields["data"]))
                fields = {}
        except (aiohttp.ClientError, ConnectionError):
            pass  # the node went away: `ended` tells the test
        finally:
            self.ended.set()

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
            self._reader = None
        if self._closer is not None:
            with contextlib.suppress(Exception):
                await self._closer()
            self._closer = None


async def received(watcher: Watcher, count: int, timeout_s: float = 15.0) -> None:
    """Wait until `watcher` has received `count` events; fail after `timeout_s`."""
    what = f"{watcher.dialect} to receive {count} events"
    await until(lambda: len(watcher.events) >= count, what, timeout_s)


def problems(watcher: Watcher, expected: list[tuple[str, str]]) -> str:
    """What is wrong with what a watcher received, or "" when it is exactly `expected`."""
    got = watcher.events
    ids = [event_id for event_id, _ in got]
    if len(set(ids)) != len(ids):
        return f"{watcher.dialect}: duplicated events"
    if ids != sorted(ids):
        return f"{watcher.dialect}: events out of order"
    missing = set(expected) - set(got)
    if missing:
        return f"{watcher.dialect}: {len(missing)} event(s) lost"
    if got != expected:
        return f"{watcher.dialect}: events that are not in the log"
    return ""


class Device:
    """A device raising alerts over JSON-RPC on one node. A call whose socket closes fails at
    once with ConnectionError (its outcome unknown), rather than waiting out a timeout."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self._next = 0
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def connect(cls, http: aiohttp.ClientSession, node: Endpoint) -> Device:
        bearer = token("device-1", "service", ["h1"])
        return cls(
            await http.ws_connect(node.ws_url, headers={"Authorization": f"Bearer {bearer}"})
        )

    async def _read(self) -> None:
        try:
            async for msg in self.ws:
                if msg.type is aiohttp.WSMsgType.TEXT:
                    frame = orjson.loads(msg.data)
                    future = self._pending.pop(frame.get("id"), None)
                    if future is not None and not future.done():
                        future.set_result(frame)
        finally:
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(ConnectionError("the node closed the socket"))

    async def create(self, title: str) -> str:
        """The new alert's id."""
        self._next += 1
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[self._next] = future
        params = {
            "hospitalId": "h1",
            "type": "call_button",
            "priority": "high",
            "title": title,
            "location": "Ward 3, bed 12",
        }
        request = {"jsonrpc": "2.0", "id": self._next, "method": "healthcare.createAlert"}
        if self._reader.done():
            raise ConnectionError("the node closed the socket")
        await self.ws.send_str(orjson.dumps({**request, "params": params}).decode())
        reply = await asyncio.wait_for(future, 10)
        assert "result" in reply, reply
        return str(reply["result"]["id"])

    async def close(self) -> None:
        await self.ws.close()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


async def health(http: aiohttp.ClientSession, node: ServerProcess) -> dict[str, Any]:
    async with http.get(node.url + "/health") as resp:
        body: dict[str, Any] = await resp.json()
        return body
