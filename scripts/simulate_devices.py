"""Play a ward of bedside monitors against a running Alertwire server.

    python scripts/simulate_devices.py --hospital h1 --patients 50 --rate 2
    python scripts/simulate_devices.py --url ws://127.0.0.1:3001/api/trpc --duration 60

Each patient has a monitor (`mon-<n>`) that reports heart rate, SpO2, blood pressure,
temperature and respiratory rate `--rate` times a second through `vitals.report`, values
wandering around a normal baseline. Now and then a patient deteriorates for a while (a value
crosses a default threshold rule, so an alert is raised and, while it lasts, updated), and now
and then a monitor reports `offline` and comes back a little later (a `device.offline` alert).
Open the dashboard (`python scripts/issue_token.py --role charge_nurse --url`) to watch.

The token is a `service` token minted like scripts/issue_token.py does (JWT_SECRET, or the
development secret in the server's data directory: run it from the directory the server runs
in), or `--token`. One WebSocket, calls pipelined; stops after `--duration` seconds or Ctrl-C.
Patient ids are made up (`sim-<hospital>-<n>`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rpc.auth import issue_token  # noqa: E402
from server.config import ConfigError, minting_auth  # noqa: E402

# kind -> (baseline, spread of the random walk, low, high): normal values stay inside.
BASELINE: dict[str, tuple[float, float, float, float]] = {
    "heart_rate": (76, 2.0, 55, 110),
    "spo2": (97, 0.4, 93, 100),
    "systolic_bp": (122, 2.0, 100, 138),
    "diastolic_bp": (78, 1.5, 60, 88),
    "temperature": (36.9, 0.05, 36.2, 38.0),
    "respiratory_rate": (15, 0.6, 10, 22),
}
# How a deterioration moves each kind (towards a default rule's breach).
EPISODES: list[dict[str, float]] = [
    {"spo2": 86},
    {"heart_rate": 142},
    {"systolic_bp": 158, "diastolic_bp": 96},
    {"temperature": 39.2},
    {"heart_rate": 36},
]
UNITS = {
    "heart_rate": "bpm",
    "spo2": "%",
    "systolic_bp": "mmHg",
    "diastolic_bp": "mmHg",
    "temperature": "°C",
    "respiratory_rate": "/min",
}


@dataclass
class Monitor:
    patient_id: str
    device_id: str
    values: dict[str, float] = field(default_factory=lambda: {k: v[0] for k, v in BASELINE.items()})
    episode: dict[str, float] | None = None
    episode_left: int = 0
    offline_left: int = 0

    def step(self, rng: random.Random, breach_chance: float) -> list[dict[str, Any]]:
        if self.episode is None and rng.random() < breach_chance:
            self.episode = rng.choice(EPISODES)
            self.episode_left = rng.randint(10, 40)
        readings = []
        for kind, (base, spread, low, high) in BASELINE.items():
            target = base
            if self.episode is not None and kind in self.episode:
                target = self.episode[kind]
            value = self.values[kind] + rng.gauss(0, spread) + (target - self.values[kind]) * 0.2
            if self.episode is None or kind not in self.episode:
                value = min(max(value, low), high)
            self.values[kind] = value
            decimals = 1 if kind == "temperature" else 0
            readings.append({"kind": kind, "value": round(value, decimals), "unit": UNITS[kind]})
        if self.episode is not None:
            self.episode_left -= 1
            if self.episode_left <= 0:
                self.episode = None
        return readings


class Connection:
    """JSON-RPC over one WebSocket, calls pipelined, replies matched by id."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.ids = itertools.count(1)
        self.pending: dict[int, asyncio.Future[Any]] = {}
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type is not aiohttp.WSMsgType.TEXT:
                continue
            frame = orjson.loads(msg.data)
            request_id = frame.get("id") if isinstance(frame, dict) else None
            future = self.pending.pop(request_id, None) if isinstance(request_id, int) else None
            if future is not None and not future.done():
                future.set_result(frame)
        for future in self.pending.values():
            if not future.done():
                future.set_exception(ConnectionError("the server closed the connection"))

    async def call(self, method: str, params: dict[str, Any]) -> Any:
        request_id = next(self.ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.pending[request_id] = future
        body = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}
        await self.ws.send_str(orjson.dumps(body).decode())
        reply = await asyncio.wait_for(future, 30)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error'].get('message')}")
        return reply["result"]


@dataclass
class Counts:
    reports: int = 0
    readings: int = 0
    alerts: int = 0
    offline: int = 0
    errors: int = 0


async def run_monitor(
    conn: Connection,
    hospital: str,
    monitor: Monitor,
    rate: float,
    args: argparse.Namespace,
    counts: Counts,
    rng: random.Random,
    deadline: float,
) -> None:
    await asyncio.sleep(rng.random() / rate)  # spread the monitors over the period
    while time.monotonic() < deadline:
        try:
            if monitor.offline_left > 0:
                monitor.offline_left -= 1
                if monitor.offline_left == 0:
                    await conn.call("devices.reportStatus", status(hospital, monitor, "online"))
            elif rng.random() < args.offline_chance:
                monitor.offline_left = int(rate * rng.randint(5, 20))
                counts.offline += 1
                await conn.call(
                    "devices.reportStatus",
                    status(hospital, monitor, "offline", detail="lead disconnected"),
                )
            else:
                readings = monitor.step(rng, args.breach_chance)
                params = {
                    "hospitalId": hospital,
                    "patientId": monitor.patient_id,
                    "deviceId": monitor.device_id,
                    "readings": readings,
                }
                result = await conn.call("vitals.report", params)
                counts.reports += 1
                counts.readings += int(result["accepted"])
                counts.alerts += len(result["alerts"])
        except (RuntimeError, TimeoutError, ConnectionError) as exc:
            counts.errors += 1
            print(f"simulate_devices: {type(exc).__name__}: {exc}", file=sys.stderr)
        await asyncio.sleep(1 / rate)


def status(hospital: str, monitor: Monitor, state: str, **extra: Any) -> dict[str, Any]:
    return {
        "hospitalId": hospital,
        "deviceId": monitor.device_id,
        "status": state,
        "patientId": monitor.patient_id,
        **extra,
    }


def service_token(hospital: str) -> str:
    config, _ = minting_auth()
    return issue_token(
        config,
        sub="simulated-gateway",
        role="service",
        hospitals=[hospital],
        ttl_seconds=24 * 3600,
        now=time.time(),
    )


async def main_async(args: argparse.Namespace) -> int:
    token = args.token or service_token(args.hospital)
    rng = random.Random(args.seed)
    monitors = [
        Monitor(f"sim-{args.hospital}-{n:03d}", f"mon-{n:03d}") for n in range(1, args.patients + 1)
    ]
    counts = Counts()
    deadline = time.monotonic() + (args.duration or float("inf"))
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(args.url, headers={"Authorization": f"Bearer {token}"})
        conn = Connection(ws)
        tasks = [
            asyncio.create_task(
                run_monitor(conn, args.hospital, m, args.rate, args, counts, rng, deadline)
            )
            for m in monitors
        ]
        started = time.monotonic()
        try:
            while not all(t.done() for t in tasks):
                await asyncio.wait(tasks, timeout=5)
                elapsed = time.monotonic() - started
                print(
                    f"{elapsed:5.0f} s: {counts.readings} readings in {counts.reports} reports "
                    f"({counts.readings / elapsed:.0f}/s), {counts.alerts} alerts raised or "
                    f"updated, {counts.offline} monitors went offline, {counts.errors} errors",
                    file=sys.stderr,
                )
        finally:
            for task in tasks:
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(*tasks, return_exceptions=True)
            await ws.close()
            conn.reader.cancel()
    return 0 if counts.errors == 0 else 1


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Simulate bedside monitors for Alertwire.")
    parser.add_argument("--hospital", default="h1")
    parser.add_argument("--patients", type=int, default=50)
    parser.add_argument("--rate", type=float, default=2.0, help="reports per monitor per second")
    parser.add_argument("--url", default="ws://127.0.0.1:3001/api/trpc")
    parser.add_argument("--token", default=None, help="a service token (default: minted here)")
    parser.add_argument("--duration", type=float, default=0, help="seconds (0: until Ctrl-C)")
    parser.add_argument(
        "--breach-chance",
        type=float,
        default=0.002,
        help="chance per report that a patient starts to deteriorate",
    )
    parser.add_argument(
        "--offline-chance",
        type=float,
        default=0.0005,
        help="chance per report that a monitor goes offline for 5-20 s",
    )
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)
    if not 1 <= args.patients <= 10_000 or not 0 < args.rate <= 50:
        parser.error("--patients 1-10000 and --rate in (0, 50]")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return asyncio.run(main_async(args))
    except ConfigError as exc:
        print(f"simulate_devices: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
