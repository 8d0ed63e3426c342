"""The attackers of scripts/bench_hostile.py, each at a fixed intensity for a fixed time, run
in a process of their own (`run_attack`) so that the bystander's measurements are not taken
on the attackers' event loop. Every socket goes to 127.0.0.1 and comes from 127.0.0.0/8.

Each attack returns counts of what it did and what it got (statuses, closes), so a run can be
checked for having actually attacked: an attack that never reached the server measures nothing.
"""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from multiprocessing.connection import Connection
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson

from bench.wsclient import encode_frame
from rpc.auth import AuthConfig, issue_token

KIB = 1024
ANONYMOUS_BODY = 16 * KIB
SUBSCRIBE = "healthcare.subscribeToAlerts"
ATTACK_HOSPITAL = "h2"  # the slow readers' alerts: the bystander (h1) hears none of them
BIG_MESSAGE = "m" * 2000


def nested(size: int) -> bytes:
    return b"[" * (size // 2) + b"]" * (size // 2)


def repeated(size: int) -> bytes:
    count = (size - 2) // 3
    body = b"[" + b",".join([b"[]"] * count)
    return body + b" " * (size - len(body) - 1) + b"]"


def strings(size: int) -> bytes:
    count = (size - 2) // 4
    body = b"[" + b",".join([b'"a"'] * count)
    return body + b" " * (size - len(body) - 1) + b"]"


Job = Coroutine[Any, Any, None]


class Target:
    def __init__(self, port: int, secret: str, until: float) -> None:
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self.auth = AuthConfig(secret)
        self.until = until
        self.counts: Counter[str] = Counter()

    def token(self, sub: str, role: str = "nurse", hospital: str = ATTACK_HOSPITAL) -> str:
        return issue_token(
            self.auth, sub=sub, role=role, hospitals=[hospital], ttl_seconds=3600, now=time.time()
        )

    def left(self) -> float:
        return self.until - time.monotonic()


async def paced(target: Target, per_s: float, action: Callable[[int], Job]) -> None:
    """`action(n)` started at n / per_s seconds from now until the attack's end, each as its
    own task, so a slow answer does not lower the intensity."""
    start = time.monotonic()
    tasks: set[asyncio.Task[None]] = set()
    n = 0
    while True:
        due = start + n / per_s
        if due >= target.until:
            break
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        task = asyncio.create_task(action(n))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        n += 1
    await asyncio.sleep(max(0.0, target.left()))
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def heavy_json(target: Target) -> None:
    """Four anonymous clients posting 16 KiB of nested or repeated empty lists in a loop."""
    url = f"{target.base}/api/trpc/healthcare.createAlert"
    bodies = [nested(ANONYMOUS_BODY), repeated(ANONYMOUS_BODY), nested(ANONYMOUS_BODY + 2)]
    headers = {"Content-Type": "application/json"}

    async def client() -> None:
        async with aiohttp.ClientSession() as http:
            n = 0
            while target.left() > 0:
                async with http.post(url, data=bodies[n % 3], headers=headers) as resp:
                    await resp.read()
                    target.counts[f"http_{resp.status}"] += 1
                n += 1

    await asyncio.gather(*(client() for _ in range(4)))


Attack = Callable[[Target], Job]


def upgrade_flood(addresses: int, total: int = 2000) -> Attack:
    """`total` WebSocket upgrades without a token, spread evenly over the attack, from
    127.0.0.2 onwards (`addresses` of them); accepted sockets are held open, never speaking."""

    async def attack(target: Target) -> None:
        sessions = [
            aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(local_addr=(f"127.0.0.{2 + n}", 0), limit=0)
            )
            for n in range(addresses)
        ]
        held: list[aiohttp.ClientWebSocketResponse] = []
        url = f"ws://127.0.0.1:{target.port}/api/trpc"

        async def one(n: int) -> None:
            try:
                held.append(await sessions[n % addresses].ws_connect(url, autoping=False))
                target.counts["upgraded"] += 1
            except aiohttp.WSServerHandshakeError as refused:
                target.counts[f"refused_{refused.status}"] += 1
            except aiohttp.ClientError:
                target.counts["failed"] += 1

        try:
            await paced(target, total / max(target.left(), 0.1), one)
        finally:
            await asyncio.gather(*(ws.close() for ws in held), return_exceptions=True)
            for session in sessions:
                await session.close()

    return attack


async def raw_socket(port: int, rcvbuf: int | None = None) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    return sock


async def slow_headers(target: Target, sockets: int = 500) -> None:
    """500 connections that send part of a request line, then one byte per second; each is
    opened again when the server cuts it off."""
    loop = asyncio.get_running_loop()

    async def one() -> None:
        while target.left() > 0:
            sock = await raw_socket(target.port)
            target.counts["opened"] += 1
            try:
                await loop.sock_sendall(sock, b"GET /health?pad=")
                while target.left() > 0:
                    await asyncio.sleep(1.0)
                    await loop.sock_sendall(sock, b"x")
            except (ConnectionResetError, BrokenPipeError):
                target.counts["cut_off"] += 1
            finally:
                sock.close()

    await _until_end(target, [one() for _ in range(sockets)])


async def _until_end(target: Target, work: list[Any]) -> None:
    tasks = [asyncio.ensure_future(w) for w in work]
    await asyncio.sleep(max(0.0, target.left()))
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def _request(path: str, headers: dict[str, str]) -> bytes:
    lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def _slow_ws(target: Target, sub: str) -> socket.socket:
    sock = await raw_socket(target.port, rcvbuf=4096)
    key = base64.b64encode(os.urandom(16)).decode()
    headers = {
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": key,
        "Authorization": f"Bearer {target.token(sub)}",
    }
    loop = asyncio.get_running_loop()
    await loop.sock_sendall(sock, _request("/api/trpc", headers))
    head = await loop.sock_recv(sock, 4096)
    target.counts["ws_upgraded" if head.startswith(b"HTTP/1.1 101") else "ws_refused"] += 1
    call = {"jsonrpc": "2.0", "id": 1, "method": SUBSCRIBE, "params": {"hospitalId": "h2"}}
    await loop.sock_sendall(sock, encode_frame(orjson.dumps(call)))
    return sock


async def _slow_sse(target: Target, sub: str) -> socket.socket:
    sock = await raw_socket(target.port, rcvbuf=4096)
    path = f"/api/trpc/{SUBSCRIBE}?input=" + quote('{"hospitalId":"h2"}')
    headers = {"Accept": "text/event-stream", "Authorization": f"Bearer {target.token(sub)}"}
    loop = asyncio.get_running_loop()
    await loop.sock_sendall(sock, _request(path, headers))
    head = await loop.sock_recv(sock, 4096)
    target.counts["sse_opened" if head.startswith(b"HTTP/1.1 200") else "sse_refused"] += 1
    return sock


async def _big_alerts(target: Target, per_s: float) -> None:
    """Alerts with the longest message for hospital h2, through one device's HTTP session."""
    url = f"{target.base}/api/trpc/healthcare.createAlert"
    headers = {"Authorization": f"Bearer {target.token('attack-device', 'service')}"}
    async with aiohttp.ClientSession() as http:

        async def one(n: int) -> None:
            data = {"hospitalId": ATTACK_HOSPITAL, "type": "bench", "priority": "low"}
            data |= {"title": f"Load {n}", "message": BIG_MESSAGE}
            async with http.post(url, json=data, headers=headers) as resp:
                target.counts[f"alerts_{resp.status}"] += 1

        await paced(target, per_s, one)


def slow_readers(ws: int, sse: int, alerts_per_s: float) -> Attack:
    """Authenticated subscribers that never read, and alerts with big messages for them."""

    async def attack(target: Target) -> None:
        sockets = [await _slow_ws(target, f"slow-ws-{n}") for n in range(ws)]
        sockets += [await _slow_sse(target, f"slow-sse-{n}") for n in range(sse)]
        try:
            await _big_alerts(target, alerts_per_s)
        finally:
            for sock in sockets:
                sock.close()

    return attack


ATTACKS: dict[str, Attack] = {
    "heavy_json": heavy_json,
    "upgrades_one_address": upgrade_flood(1),
    "upgrades_100_addresses": upgrade_flood(100),
    "slow_headers": slow_headers,
    "slow_readers": slow_readers(200, 50, 40.0),
    "stalled_sse": slow_readers(0, 1, 200.0),  # enough to fill the kernel's buffers for one
}


def run_attack(
    conn: Connection, name: str, port: int, secret: str, duration_s: float, cpu: int | None
) -> None:
    """Process entry: say "started", run one attack for `duration_s`, send its counts. At a
    lower priority than the bystander, which shares its CPU, so that the bystander's own
    scheduling is not what is measured."""
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    os.nice(19)
    target = Target(port, secret, time.monotonic() + duration_s)
    conn.send("started")
    asyncio.run(ATTACKS[name](target))
    conn.send(dict(target.counts))
    conn.close()
