"""Vitals benchmarks against a fresh server process (CONTRACT 8, issue "Devices, vitals and
threshold rules"):

    python scripts/bench_vitals.py                      # all three
    python scripts/bench_vitals.py --only ingest --duration 20
    python scripts/bench_vitals.py --database-url postgresql://postgres@127.0.0.1/alertwire_bench

1. ingest: readings stored and judged per second through `vitals.report` from 8 gateways
   (WebSockets), batches of 20, each gateway keeping `--in-flight` calls pipelined; 1% of
   readings breach a default rule, so rule alerts are raised and updated along the way.
2. breach: a breach's report sent to `healthcare.subscribeToAlerts` receiving its
   `alert.created`, one at a time at light load (a new patient each time): p50, p99; beside
   it, in the same run, a plain `createAlert` to its `alert.created` (the floor).
3. live: 1,000 `vitals.subscribe` subscribers (5 per patient, maxRateHz 4), 200 patients
   reporting once a second: updates delivered per second and the server's CPU share.

The load generator runs in this process, on the same machine: figures from a loaded machine
are indicative only. Results go to bench/results/vitals-<name>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import itertools
import os
import platform
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.procstat import sample  # noqa: E402
from rpc.auth import AuthConfig, issue_token  # noqa: E402

LISTEN = re.compile(r"listening on http://([^:]+):(\d+)")
KINDS = ["heart_rate", "spo2", "systolic_bp", "diastolic_bp", "temperature", "respiratory_rate"]
NORMAL = {"heart_rate": 75, "spo2": 97, "systolic_bp": 120, "diastolic_bp": 78,
          "temperature": 36.8, "respiratory_rate": 15}  # fmt: skip
BREACH = {"heart_rate": 150, "spo2": 85, "systolic_bp": 160, "diastolic_bp": 95,
          "temperature": 39.5, "respiratory_rate": 15}  # fmt: skip


class Server:
    def __init__(self, proc: asyncio.subprocess.Process, port: int, secret: str) -> None:
        self.proc, self.port, self.secret = proc, port, secret

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/api/trpc"

    def token(self, sub: str, role: str) -> str:
        auth = AuthConfig(self.secret)
        return issue_token(
            auth, sub=sub, role=role, hospitals=["h1"], ttl_seconds=3600, now=time.time()
        )

    def cpu(self) -> float:
        return sample(self.proc.pid).cpu_s


async def start_server(workdir: Path, database_url: str | None) -> Server:
    secret = secrets.token_urlsafe(32)
    env = {
        **os.environ,
        "WEBSOCKET_PORT": "0",
        "JWT_SECRET": secret,
        "LOG_LEVEL": "WARNING",
        "RATE_LIMIT_PER_10S": "0",
        "MAX_CONNECTIONS_PER_USER": "0",
        "MAX_CONNECTIONS": "5000",
        "ALERTWIRE_DATA_DIR": str(workdir / "data"),
        "DATABASE_URL": database_url or f"sqlite:///{workdir}/bench.db",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "scripts" / "start_websocket_server.py"),
        cwd=workdir,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode()
    match = LISTEN.search(line)
    if match is None:
        raise RuntimeError(f"the server did not start: {line!r}")
    return Server(proc, int(match.group(2)), secret)


class Client:
    """JSON-RPC over one WebSocket: pipelined calls, subscription frames counted or queued."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.ids = itertools.count(1)
        self.pending: dict[int, asyncio.Future[Any]] = {}
        self.notifications = 0
        self.events: asyncio.Queue[tuple[float, Any]] | None = None
        self.reader = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, http: aiohttp.ClientSession, server: Server, token: str) -> Client:
        ws = await http.ws_connect(
            server.ws_url, headers={"Authorization": f"Bearer {token}"}, max_msg_size=0
        )
        return cls(ws)

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type is not aiohttp.WSMsgType.TEXT:
                continue
            data = msg.data
            if data.startswith('{"jsonrpc":"2.0","method":"subscription"'):
                self.notifications += 1
                if self.events is not None:
                    self.events.put_nowait((time.perf_counter(), orjson.loads(data)))
                continue
            frame = orjson.loads(data)
            future = self.pending.pop(frame.get("id"), None)
            if future is not None and not future.done():
                future.set_result(frame)

    async def call(self, method: str, params: Any) -> Any:
        request_id = next(self.ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.pending[request_id] = future
        body = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}
        await self.ws.send_str(orjson.dumps(body).decode())
        reply = await asyncio.wait_for(future, 60)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply["result"]

    async def close(self) -> None:
        await self.ws.close()
        self.reader.cancel()


def readings(n: int, breach_every: int, counter: itertools.count[int]) -> list[dict[str, Any]]:
    out = []
    for _ in range(n):
        i = next(counter)
        kind = KINDS[i % len(KINDS)]
        value = BREACH[kind] if breach_every and i % breach_every == 0 else NORMAL[kind]
        out.append({"kind": kind, "value": value})
    return out


async def _gateways(
    port: int, secret: str, first: int, count: int, opts: argparse.Namespace
) -> tuple[int, int]:
    """One load-generator process: `count` gateways, each with `in_flight` calls pipelined."""
    server = Server(None, port, secret)  # type: ignore[arg-type]
    counter = itertools.count(first * 1_000_000)
    stored = alerts = 0
    stop_at = time.perf_counter() + opts.duration
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        clients = [
            await Client.open(http, server, server.token(f"gw-{g}", "service"))
            for g in range(first, first + count)
        ]

        async def gateway(client: Client, g: int) -> None:
            nonlocal stored, alerts
            n = 0
            while time.perf_counter() < stop_at:
                n += 1
                params = {
                    "hospitalId": "h1",
                    "patientId": f"bench-{g}-{n % 50}",
                    "deviceId": f"gw-{g}-mon-{n % 50}",
                    "readings": readings(opts.batch, 100, counter),
                }
                result = await client.call("vitals.report", params)
                stored += result["accepted"]
                alerts += len(result["alerts"])

        await asyncio.gather(
            *(
                gateway(c, g)
                for g, c in zip(range(first, first + count), clients, strict=True)
                for _ in range(opts.in_flight)
            )
        )
        for client in clients:
            await client.close()
    return stored, alerts


def _gateway_process(
    port: int, secret: str, first: int, count: int, opts: argparse.Namespace
) -> tuple[int, int]:
    return asyncio.run(_gateways(port, secret, first, count, opts))


async def ingest(
    http: aiohttp.ClientSession, server: Server, opts: argparse.Namespace
) -> dict[str, Any]:
    """The gateways spread over `--workers` processes, so that the load generator is not
    what is measured."""
    workers = max(1, min(opts.workers, opts.gateways))
    share = [
        opts.gateways // workers + (1 if w < opts.gateways % workers else 0) for w in range(workers)
    ]
    firsts = [sum(share[:w]) for w in range(workers)]
    loop = asyncio.get_running_loop()
    with concurrent.futures.ProcessPoolExecutor(workers) as pool:
        cpu0, t0 = server.cpu(), time.perf_counter()
        done = await asyncio.gather(
            *(
                loop.run_in_executor(pool, _gateway_process, server.port, server.secret, f, n, opts)
                for f, n in zip(firsts, share, strict=True)
            )
        )
        wall, cpu = time.perf_counter() - t0, server.cpu() - cpu0
    stored = sum(d[0] for d in done)
    alerts = sum(d[1] for d in done)
    return {
        "readings_per_s": round(stored / wall),
        "readings": stored,
        "alerts_raised_or_updated": alerts,
        "seconds": round(wall, 2),
        "load_generator_processes": workers,
        "server_cpu_share": round(cpu / wall, 3),
        "server_cpu_us_per_reading": round(cpu / max(stored, 1) * 1e6, 1),
    }


async def breach(
    http: aiohttp.ClientSession, server: Server, opts: argparse.Namespace
) -> dict[str, Any]:
    """Alternately a breaching report and a plain `createAlert` (the floor: one commit and the
    fan-out), each to its `alert.created` at a subscriber, one at a time."""
    gateway = await Client.open(http, server, server.token("gw-latency", "service"))
    nurse = await Client.open(http, server, server.token("nurse-latency", "nurse"))
    nurse.events = asyncio.Queue()
    await nurse.call("healthcare.subscribeToAlerts", {"hospitalId": "h1"})
    await gateway.call("rules.list", {"hospitalId": "h1"})  # the defaults stored once
    samples: dict[str, list[float]] = {"report": [], "createAlert": []}
    for i in range(opts.samples * 2):
        patient = f"latency-{i}"
        if i % 2 == 0:
            method, kind = "vitals.report", "report"
            params: dict[str, Any] = {
                "hospitalId": "h1",
                "patientId": patient,
                "deviceId": f"lat-mon-{i}",
                "readings": [{"kind": "spo2", "value": 84}],
            }
        else:
            method, kind = "healthcare.createAlert", "createAlert"
            params = {
                "hospitalId": "h1",
                "patientId": patient,
                "type": "vitals.low_spo2",
                "priority": "high",
                "title": "SpO2 84 %",
            }
        sent = time.perf_counter()
        await gateway.call(method, params)
        while True:
            received, frame = await asyncio.wait_for(nurse.events.get(), 10)
            data = frame["params"]["data"]
            if data["type"] == "alert.created" and data["alert"]["patientId"] == patient:
                samples[kind].append((received - sent) * 1000)
                break
        await asyncio.sleep(0.02)
    for client in (gateway, nurse):
        await client.close()
    out: dict[str, Any] = {}
    for kind, values in samples.items():
        ordered = sorted(values)
        out[kind] = {
            "samples": len(ordered),
            "p50_ms": round(statistics.median(ordered), 2),
            "p99_ms": round(ordered[max(0, int(len(ordered) * 0.99) - 1)], 2),
            "max_ms": round(ordered[-1], 2),
        }
    return out


async def live(
    http: aiohttp.ClientSession, server: Server, opts: argparse.Namespace
) -> dict[str, Any]:
    patients = opts.patients
    subscribers: list[Client] = []
    for s in range(opts.subscribers):
        client = await Client.open(http, server, server.token(f"screen-{s}", "nurse"))
        await client.call(
            "vitals.subscribe", {"hospitalId": "h1", "patientId": f"ward-{s % patients}"}
        )
        subscribers.append(client)
    gateway = await Client.open(http, server, server.token("gw-ward", "service"))
    counter = itertools.count()
    stop_at = time.perf_counter() + opts.duration

    async def patient(p: int) -> None:
        await asyncio.sleep(p / patients)  # spread over the second
        next_at = time.perf_counter()
        while next_at < stop_at:
            params = {
                "hospitalId": "h1",
                "patientId": f"ward-{p}",
                "deviceId": f"ward-mon-{p}",
                "readings": readings(6, 0, counter),
            }
            await gateway.call("vitals.report", params)
            next_at += 1.0
            await asyncio.sleep(max(0.0, next_at - time.perf_counter()))

    before = sum(c.notifications for c in subscribers)
    cpu0, t0 = server.cpu(), time.perf_counter()
    await asyncio.gather(*(patient(p) for p in range(patients)))
    wall, cpu = time.perf_counter() - t0, server.cpu() - cpu0
    delivered = sum(c.notifications for c in subscribers) - before
    for client in (*subscribers, gateway):
        await client.close()
    return {
        "subscribers": len(subscribers),
        "patients": patients,
        "updates_per_s": round(delivered / wall),
        "seconds": round(wall, 2),
        "server_cpu_share": round(cpu / wall, 3),
    }


async def main_async(opts: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {
        "command": " ".join(sys.argv),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "loadavg": os.getloadavg(),
        },
        "database": "postgresql" if opts.database_url else "sqlite",
    }
    phases = {"ingest": ingest, "breach": breach, "live": live}
    with tempfile.TemporaryDirectory(prefix="bench-vitals-") as tmp:
        for name, phase in phases.items():
            if opts.only and name != opts.only:
                continue
            workdir = Path(tmp) / name
            workdir.mkdir()
            server = await start_server(workdir, opts.database_url)
            try:
                async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
                    results[name] = await phase(http, server, opts)
            finally:
                server.proc.terminate()
                await server.proc.wait()
            print(f"{name}: {results[name]}", file=sys.stderr)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Vitals benchmarks (ingest, breach, live).")
    parser.add_argument("--only", choices=["ingest", "breach", "live"])
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--gateways", type=int, default=8)
    parser.add_argument("--batch", type=int, default=20)
    parser.add_argument("--in-flight", type=int, default=8, help="pipelined calls per gateway")
    parser.add_argument("--workers", type=int, default=2, help="load-generator processes")
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--patients", type=int, default=200)
    parser.add_argument("--database-url", default=None, help="an empty PostgreSQL database")
    parser.add_argument("--name", default="latest")
    opts = parser.parse_args(argv)
    results = asyncio.run(main_async(opts))
    out = ROOT / "bench" / "results" / f"vitals-{opts.name}.json"
    out.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    print(orjson.dumps(results, option=orjson.OPT_INDENT_2).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
