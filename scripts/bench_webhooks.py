"""Webhooks benchmark, both directions.

    python scripts/bench_webhooks.py                       # 10,000 inbound alerts, 8 keys
    python scripts/bench_webhooks.py --signed --idempotent # with signatures and Idempotency-Keys
    python scripts/bench_webhooks.py --endpoints 4 --deliveries 2000

Starts the server (scripts/start_websocket_server.py) on a free port with a fresh SQLite
database (each commit on disk), `RATE_LIMIT_PER_10S=0` (the per-key limit would otherwise be
what is measured) and `WEBHOOK_ALLOW_PRIVATE=1` (the receiver is local), then:

1. Inbound: `--concurrency` clients POST `--requests` alerts to /api/webhooks/alerts, each with
   one of `--keys` API keys (Bearer), kept-alive connections. Every answer must be 201.
   Prints alerts/s and the request latency p50/p99.
2. Outbound: registers `--endpoints` endpoints on a receiver in this process, raises
   `--deliveries` alerts through the inbound webhook, and waits until every endpoint has
   received each one (checked: in order, once, signed). Prints deliveries/s over all
   endpoints, from the first alert sent to the last delivery received.

Writes bench/results/webhooks[-signed][-idempotent].json.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.output import save  # noqa: E402
from rpc import signatures  # noqa: E402
from rpc.auth import AuthConfig, issue_token  # noqa: E402

SECRET = secrets.token_urlsafe(32)  # a throwaway key for the benchmark's own server
LISTEN = re.compile(r"listening on http://([^:]+):(\d+)")
ALERT = {"hospitalId": "h1", "type": "call_button", "priority": "high", "title": "bench"}


async def start(data: Path) -> tuple[asyncio.subprocess.Process, int]:
    env = {
        **os.environ,
        "WEBSOCKET_PORT": "0",
        "JWT_SECRET": SECRET,
        "DATABASE_URL": f"sqlite:///{data}/webhooks.db",
        "ALERTWIRE_DATA_DIR": str(data),
        "RATE_LIMIT_PER_10S": "0",
        "WEBHOOK_ALLOW_PRIVATE": "1",
        "LOG_LEVEL": "WARNING",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "scripts" / "start_websocket_server.py"),
        env=env,
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
    match = LISTEN.search(line)
    if match is None:
        raise SystemExit(f"the server did not start: {line!r}")
    return proc, int(match.group(2))


def admin_token() -> str:
    return issue_token(
        AuthConfig(SECRET),
        sub="admin",
        role="admin",
        hospitals=["h1"],
        ttl_seconds=3600,
        now=time.time(),
    )


async def procedure(http: aiohttp.ClientSession, base: str, path: str, body: Any) -> Any:
    headers = {"Authorization": f"Bearer {admin_token()}"}
    async with http.post(f"{base}/api/trpc/{path}", json=body, headers=headers) as resp:
        answer = await resp.json()
        if resp.status != 200:
            raise SystemExit(f"{path} failed: {answer}")
        return answer["result"]["data"]


class Poster:
    """POSTs alerts to the inbound webhook as an integration would: kept-alive HTTP/1.1
    connections, one request at a time on each. Written on bare asyncio streams rather than
    aiohttp's client so that the load generator, sharing the cores with the server, costs as
    little as it can."""

    def __init__(self, port: int, keys: list[dict[str, Any]], signed: bool, idempotent: bool):
        self.port = port
        self.keys = keys
        self.signed = signed
        self.idempotent = idempotent
        self.latencies: list[float] = []

    def request(self, n: int) -> bytes:
        key = self.keys[n % len(self.keys)]
        body = orjson.dumps({**ALERT, "title": f"bench {n}"})
        lines = [
            b"POST /api/webhooks/alerts HTTP/1.1",
            f"Host: 127.0.0.1:{self.port}".encode(),
            f"Authorization: Bearer {key['key']}".encode(),
            b"Content-Type: application/json",
            f"Content-Length: {len(body)}".encode(),
        ]
        if self.signed:
            value = signatures.sign(key["signingSecret"], int(time.time()), body)
            lines.append(f"{signatures.HEADER}: {value}".encode())
        if self.idempotent:
            lines.append(f"Idempotency-Key: bench-{n}".encode())
        return b"\r\n".join(lines) + b"\r\n\r\n" + body

    async def client(self, numbers: Any) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            for n in numbers:
                began = time.perf_counter()
                writer.write(self.request(n))
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head[9:12])
                length = 0
                for line in head.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                await reader.readexactly(length)
                if status != 201:
                    raise SystemExit(f"inbound answered {status}")
                self.latencies.append(time.perf_counter() - began)
        finally:
            writer.close()

    async def run(self, requests: int, concurrency: int, first: int = 0) -> float:
        """Seconds to make `requests` calls with `concurrency` clients."""
        numbers = iter(range(first, first + requests))
        began = time.perf_counter()
        await asyncio.gather(*(self.client(numbers) for _ in range(concurrency)))
        return time.perf_counter() - began


class Receiver:
    """Endpoints on 127.0.0.1: checks order, duplicates and signatures as deliveries arrive."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.secrets: dict[str, str] = {}
        self.seen: dict[str, list[str]] = {}
        self.problems = 0
        self.last_at = 0.0
        self.done = asyncio.Event()
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        body = await request.read()
        header = request.headers.get(signatures.HEADER)
        if signatures.verify(self.secrets.get(name, ""), header, body, time.time()) is not None:
            self.problems += 1
        event_id = request.headers["X-Alertwire-Event-Id"]
        seen = self.seen.setdefault(name, [])
        if seen and event_id <= seen[-1]:
            self.problems += 1  # out of order or a duplicate
        seen.append(event_id)
        self.last_at = time.perf_counter()
        if all(len(ids) >= self.expected for ids in self.seen.values()) and len(self.seen) == len(
            self.secrets
        ):
            self.done.set()
        return web.Response(text="ok")

    async def start(self) -> web.AppRunner:
        app = web.Application()
        app.router.add_post("/hook/{name}", self.handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
        return runner


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


async def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        proc, port = await start(Path(tmp))
        base = f"http://127.0.0.1:{port}"
        try:
            async with aiohttp.ClientSession() as http:
                keys = [
                    await procedure(
                        http,
                        base,
                        "apiKeys.create",
                        {
                            "hospitalId": "h1",
                            "name": f"bench {k}",
                            "scopes": ["alerts:write"],
                            "signed": args.signed,
                        },
                    )
                    for k in range(args.keys)
                ]
                poster = Poster(port, keys, args.signed, args.idempotent)
                await poster.run(200, 8, first=10**9)  # warm-up: connections, caches
                poster.latencies.clear()
                took = await poster.run(args.requests, args.concurrency)
                inbound = {
                    "requests": args.requests,
                    "alerts_per_s": round(args.requests / took),
                    "p50_ms": round(statistics.median(poster.latencies) * 1000, 2),
                    "p99_ms": round(percentile(poster.latencies, 0.99) * 1000, 2),
                }
                print(
                    f"inbound: {inbound['alerts_per_s']} alerts/s through /api/webhooks/alerts "
                    f"(p50 {inbound['p50_ms']} ms, p99 {inbound['p99_ms']} ms)",
                    flush=True,
                )
                receiver = Receiver(args.deliveries)
                runner = await receiver.start()
                try:
                    for e in range(args.endpoints):
                        created = await procedure(
                            http,
                            base,
                            "webhooks.create",
                            {
                                "hospitalId": "h1",
                                "url": f"{receiver.url}/e{e}",
                                "events": ["alert.created"],
                            },
                        )
                        receiver.secrets[f"e{e}"] = created["secret"]
                    began = time.perf_counter()
                    await poster.run(args.deliveries, min(args.concurrency, 32), first=10**8)
                    await asyncio.wait_for(receiver.done.wait(), args.timeout)
                    spent = receiver.last_at - began
                finally:
                    await runner.cleanup()
        finally:
            proc.terminate()
            await proc.wait()
    total = args.deliveries * args.endpoints
    outbound = {
        "endpoints": args.endpoints,
        "deliveries": total,
        "deliveries_per_s": round(total / spent),
        "problems": receiver.problems,
    }
    print(
        f"outbound: {outbound['deliveries_per_s']} deliveries/s to {args.endpoints} endpoint(s) "
        f"({total} in {spent:.2f} s; out of order, duplicated or badly signed: "
        f"{receiver.problems})",
        flush=True,
    )
    return {
        "signed": args.signed,
        "idempotent": args.idempotent,
        "keys": args.keys,
        "concurrency": args.concurrency,
        "inbound": inbound,
        "outbound": outbound,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--keys", type=int, default=8)
    parser.add_argument("--signed", action="store_true")
    parser.add_argument("--idempotent", action="store_true")
    parser.add_argument("--endpoints", type=int, default=4)
    parser.add_argument("--deliveries", type=int, default=2_000, help="alerts per endpoint")
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args()
    try:
        import uvloop  # the load generator's own cost matters here: the faster loop if any
    except ImportError:
        result = asyncio.run(run(args))
    else:
        result = uvloop.run(run(args))
    name = "webhooks" + "-signed" * args.signed + "-idempotent" * args.idempotent
    print(f"saved {save(name, result)}")


if __name__ == "__main__":
    main()
