"""The attack suite's pieces: a real server (as `server.main` starts it, guarded listener
included), the bystander whose service each attack must not degrade, and raw sockets for the
attackers that misbehave below HTTP (slow headers, idle connections, clients that never read).

Bounds here are correctness bounds, generous on purpose: the benchmark
(scripts/bench_hostile.py) measures how far inside them the server stays.
"""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager, suppress
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from bench.wsclient import OP_CLOSE, encode_frame
from server.main import Running, start, stop
from tests.integration.harness import RpcClient, config_for, token
from tests.rpc.wire import enc

DELIVERY_BOUND_S = 2.0  # an alert created during an attack reaches the bystander within this
HEALTH_BOUND_S = 1.0  # and /health answers within this
READ_TIMEOUT_S = 5.0
SUBSCRIBE = "healthcare.subscribeToAlerts"
BIG_MESSAGE = "m" * 2000  # the longest alert message: events of about 2.5 KB


def nested(size: int) -> bytes:
    """`size` bytes (even) of nested empty lists: [[[...]]]."""
    return b"[" * (size // 2) + b"]" * (size // 2)


def repeated(size: int) -> bytes:
    """`size` bytes of one list of empty lists, padded with spaces: [[],[],...   ]."""
    count = (size - 2) // 3
    body = b"[" + b",".join([b"[]"] * count)
    return body + b" " * (size - len(body) - 1) + b"]"


def alert_input(n: int, message: str | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "hospitalId": "h1",
        "type": "call_button",
        "priority": "high",
        "title": f"Call button {n}",
        "location": "Ward 3",
    }
    if message is not None:
        data["message"] = message
    return data


@asynccontextmanager
async def attack_server(
    tmp_path: Path, env: Mapping[str, str] | None = None, stall_s: float | None = None
) -> AsyncIterator[Running]:
    """The server `server.main.start` builds, with its guarded listener. SSE's stall timeout
    has no environment variable, so it is set on the limits directly."""
    config = config_for(tmp_path, **(env or {}))
    if stall_s is not None:
        config = replace(config, limits=replace(config.limits, sse_stall_timeout_s=stall_s))
    running = await start(config)
    try:
        yield running
    finally:
        await stop(running)


class Bystander:
    """An authenticated subscriber of hospital h1's alerts, and a device that raises alerts
    (over HTTP, or over its own WebSocket when HTTP is what the attack fills)."""

    def __init__(self, running: Running, http: aiohttp.ClientSession) -> None:
        self.running = running
        self.http = http
        self.base = running.base_url
        self.device_token = token("device-1", "service", ["h1"])
        self.subscriber: RpcClient
        self.device: RpcClient
        self.sid = ""
        self.created: list[str] = []  # ids of every alert raised during the test, in order
        self.received: list[str] = []  # ids of every alert event the subscriber got, in order
        self.count = 0

    @classmethod
    async def join(cls, running: Running, http: aiohttp.ClientSession) -> Bystander:
        self = cls(running, http)
        self.subscriber = await RpcClient.connect(http, running, token("nurse-1", "nurse"))
        self.device = await RpcClient.connect(http, running, self.device_token)
        self.sid = await self.subscriber.subscribe(SUBSCRIBE, {"hospitalId": "h1"})
        return self

    async def raise_alert(self, message: str | None = None, via: str = "http") -> str:
        self.count += 1
        data = alert_input(self.count, message)
        if via == "ws":
            alert_id = str((await self.device.call("healthcare.createAlert", data))["id"])
        else:
            async with self.http.post(
                f"{self.base}/api/trpc/healthcare.createAlert",
                json=data,
                headers={"Authorization": f"Bearer {self.device_token}"},
            ) as resp:
                assert resp.status == 200, await resp.text()
                alert_id = str((await resp.json())["result"]["data"]["id"])
        self.created.append(alert_id)
        return alert_id

    async def receive(self, alert_id: str) -> None:
        """Events up to and including `alert_id`'s creation (others are kept, in order)."""
        while alert_id not in self.received:
            event = await self.subscriber.next_event(self.sid)
            if event["data"]["type"] == "alert.created":
                self.received.append(event["data"]["alertId"])

    async def check(self, via: str = "http", health: bool = True) -> None:
        """The promise under attack: an alert raised now is delivered within
        DELIVERY_BOUND_S, and /health answers 200 within HEALTH_BOUND_S."""
        if health:
            async with asyncio.timeout(HEALTH_BOUND_S):
                async with self.http.get(f"{self.base}/health") as resp:
                    assert resp.status == 200
                    assert (await resp.json())["status"] == "ok"
        async with asyncio.timeout(DELIVERY_BOUND_S):
            await self.receive(await self.raise_alert(via=via))

    async def received_everything(self) -> None:
        """Every alert raised so far reached the subscriber, once and in order."""
        if self.created:
            await self.receive(self.created[-1])
        assert self.received == self.created

    async def close(self) -> None:
        await self.subscriber.close()
        await self.device.close()


async def hold_while(attack: asyncio.Future[Any], bystander: Bystander, rounds: int = 3) -> None:
    """Bystander checks while `attack` runs; the attack must still be running after them
    (so they were measured under it), and must not have failed."""
    for _ in range(rounds):
        await bystander.check()
        assert not attack.done(), attack
    attack.cancel()
    with suppress(asyncio.CancelledError):
        await attack


class Raw:
    """A TCP client on a plain non-blocking socket: nothing is read unless asked for, so a
    client that "never reads" leaves every byte to the kernel's small receive buffer."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.loop = asyncio.get_running_loop()
        self.opened = time.monotonic()

    @classmethod
    async def open(cls, port: int, local_ip: str = "127.0.0.1", rcvbuf: int | None = None) -> Raw:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        if rcvbuf is not None:  # before connect: the window is negotiated from it
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.bind((local_ip, 0))
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
        return cls(sock)

    async def send(self, data: bytes) -> None:
        await self.loop.sock_sendall(self.sock, data)

    async def recv(self, within_s: float = READ_TIMEOUT_S) -> bytes:
        """Some bytes, or b"" once the server closed or reset the connection."""
        try:
            async with asyncio.timeout(within_s):
                return await self.loop.sock_recv(self.sock, 65536)
        except (ConnectionResetError, BrokenPipeError):
            return b""

    async def head(self) -> bytes:
        """An HTTP response's status line and headers."""
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = await self.recv()
            assert chunk, f"closed before the headers ended: {data!r}"
            data += chunk
        return data

    async def until_closed(self, within_s: float = READ_TIMEOUT_S) -> bytes:
        """Everything until the server closes (then this side closes too); fails if it does
        not within `within_s`."""
        data = b""
        async with asyncio.timeout(within_s):
            while chunk := await self.recv(within_s):
                data += chunk
        self.close()
        return data

    def close(self) -> None:
        self.sock.close()


def request(method: str, path: str, headers: dict[str, str] | None = None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def slow_ws_reader(port: int, sub: str, rcvbuf: int = 4096) -> Raw:
    """An authenticated WebSocket subscriber of h1's alerts that never reads after its
    handshake (a raw socket with a small receive buffer)."""
    raw = await Raw.open(port, rcvbuf=rcvbuf)
    key = base64.b64encode(os.urandom(16)).decode()
    headers = {
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": key,
        "Authorization": f"Bearer {token(sub, 'nurse')}",
    }
    await raw.send(request("GET", "/api/trpc", headers))
    assert (await raw.head()).startswith(b"HTTP/1.1 101")
    call = {"jsonrpc": "2.0", "id": 1, "method": SUBSCRIBE, "params": {"hospitalId": "h1"}}
    await raw.send(encode_frame(orjson.dumps(call)))
    return raw


async def slow_sse_reader(port: int, sub: str, rcvbuf: int = 4096) -> Raw:
    """An SSE subscriber of h1's alerts that never reads after the response headers."""
    raw = await Raw.open(port, rcvbuf=rcvbuf)
    path = f"/api/trpc/{SUBSCRIBE}?input={enc({'hospitalId': 'h1'})}"
    headers = {"Accept": "text/event-stream", "Authorization": f"Bearer {token(sub, 'nurse')}"}
    await raw.send(request("GET", path, headers))
    assert (await raw.head()).startswith(b"HTTP/1.1 200")
    return raw


PROBE = encode_frame(b'{"jsonrpc":"2.0","id":"probe","method":"system.ping"}')


async def reader_fate(raw: Raw) -> str:
    """What became of a slow WebSocket reader: "4008" (closed as a slow consumer), "reset"
    (aborted before it read its close frame) or "served" (still open: after a probe call,
    reading everything reaches the probe's answer)."""
    try:
        await raw.send(PROBE)
    except (BrokenPipeError, ConnectionResetError):
        return "reset"
    frames = Frames()
    async with asyncio.timeout(READ_TIMEOUT_S):
        while chunk := await raw.recv():
            for opcode, payload in frames.feed(chunk):
                if opcode == OP_CLOSE:
                    return str(int.from_bytes(payload[:2], "big"))
                if b'"id":"probe"' in payload:
                    return "served"
    return "reset"


class Frames:
    """Splits a server's (unmasked, unfragmented) frames out of a byte stream."""

    def __init__(self) -> None:
        self.buffer = b""

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        self.buffer += data
        frames = []
        while True:
            buffer = self.buffer
            if len(buffer) < 2:
                break
            size, at = buffer[1] & 0x7F, 2
            if size == 126:
                size, at = int.from_bytes(buffer[2:4], "big"), 4
            elif size == 127:
                size, at = int.from_bytes(buffer[2:10], "big"), 10
            if len(buffer) < at + size:
                break
            frames.append((buffer[0] & 0x0F, buffer[at : at + size]))
            self.buffer = buffer[at + size :]
        return frames
