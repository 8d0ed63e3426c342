"""One round of scripts/bench_hostile.py: a bystander measured for a fixed time while one
attack (bench/hostile_attacks.py, in its own process) runs beside it, or none (baseline).

The bystander is what a dashboard does: an authenticated WebSocket subscriber of hospital h1's
alerts, while a device raises an alert over its own WebSocket every 100 ms (10 alerts/s) and
/health is polled every 100 ms. Latency is from each alert's or poll's scheduled time (not
from when it was sent, so a late send counts against the server's loop, not for it) to its
receipt. The server runs on its own CPU; the bystander and the attacker share the other, the
attacker at a lower priority.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import re
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

from bench import procstat
from bench.hostile_attacks import run_attack
from rpc.auth import AuthConfig, issue_token

ALERTS_PER_S = 10.0
HEALTH_PER_S = 10.0
GRACE_S = 3.0  # after the round, for alerts still on their way
WARM_UP_S = 2.0
METRIC = re.compile(r"^(alertwire_[a-z_]+)(\{[^}]*\})? ([0-9.e+-]+)$", re.MULTILINE)
COUNTED = (
    "alertwire_connections_refused_total",
    "alertwire_oversize_messages_total",
    "alertwire_bad_frames_total",
    "alertwire_http_timeouts_total",
    "alertwire_outbound_budget_closes_total",
    "alertwire_slow_consumer_closes_total",
    "alertwire_sse_stalls_total",
    "alertwire_auth_timeouts_total",
)


@dataclass
class Samples:
    latencies_ms: list[float] = field(default_factory=list)
    failures: int = 0

    def summary(self, expected: int | None = None) -> dict[str, Any]:
        values = sorted(self.latencies_ms)
        out: dict[str, Any] = {"samples": len(values), "failures": self.failures}
        if expected is not None:
            out["lost"] = expected - len(values)
        if values:
            for name, q in (("p50_ms", 0.5), ("p99_ms", 0.99)):
                out[name] = round(values[min(len(values) - 1, int(q * len(values)))], 2)
            out["max_ms"] = round(values[-1], 2)
        return out


def token(secret: str, sub: str, role: str) -> str:
    return issue_token(
        AuthConfig(secret), sub=sub, role=role, hospitals=["h1"], ttl_seconds=3600, now=time.time()
    )


async def _alerts(port: int, secret: str, duration_s: float) -> Samples:
    url = f"ws://127.0.0.1:{port}/api/trpc"
    samples = Samples()
    scheduled: dict[str, float] = {}
    async with aiohttp.ClientSession() as http:
        nurse = {"Authorization": f"Bearer {token(secret, 'bench-nurse', 'nurse')}"}
        device = {"Authorization": f"Bearer {token(secret, 'bench-device', 'service')}"}
        subscriber = await http.ws_connect(url, headers=nurse)
        publisher = await http.ws_connect(url, headers=device)
        call = {"jsonrpc": "2.0", "id": 0, "method": "healthcare.subscribeToAlerts"}
        await subscriber.send_str(orjson.dumps({**call, "params": {"hospitalId": "h1"}}).decode())
        await subscriber.receive(timeout=10)  # the subscription's id
        count = int(duration_s * ALERTS_PER_S)
        done = asyncio.Event()

        async def receive() -> None:
            async for msg in subscriber:
                frame = orjson.loads(msg.data)
                event = frame.get("params", {}).get("data", {})
                title = event.get("alert", {}).get("title", "")
                if title in scheduled:
                    samples.latencies_ms.append((time.monotonic() - scheduled.pop(title)) * 1000)
                    if len(samples.latencies_ms) == count:
                        done.set()

        async def drain_replies() -> None:
            async for msg in publisher:
                if "error" in orjson.loads(msg.data):
                    samples.failures += 1

        readers = [asyncio.create_task(receive()), asyncio.create_task(drain_replies())]
        start = time.monotonic() + 0.05
        for n in range(count):
            due = start + n / ALERTS_PER_S
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            title = f"Bystander {n}"
            scheduled[title] = due
            params = {"hospitalId": "h1", "type": "bench", "priority": "high", "title": title}
            request = {"jsonrpc": "2.0", "id": n + 1, "method": "healthcare.createAlert"}
            await publisher.send_str(orjson.dumps({**request, "params": params}).decode())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), GRACE_S)
        for task in readers:
            task.cancel()
        await subscriber.close()
        await publisher.close()
    return samples


async def _health(port: int, duration_s: float) -> Samples:
    samples = Samples()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:

        async def poll(due: float) -> None:
            try:
                async with http.get(f"http://127.0.0.1:{port}/health") as resp:
                    await resp.read()
                    if resp.status != 200:
                        samples.failures += 1
                        return
            except (aiohttp.ClientError, TimeoutError):
                samples.failures += 1
                return
            samples.latencies_ms.append((time.monotonic() - due) * 1000)

        tasks = []
        start = time.monotonic() + 0.05
        for n in range(int(duration_s * HEALTH_PER_S)):
            due = start + n / HEALTH_PER_S
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            tasks.append(asyncio.create_task(poll(due)))
        await asyncio.gather(*tasks)
    return samples


async def scrape(port: int) -> dict[str, float]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{port}/metrics") as resp,
    ):
        text = await resp.text()
    return {name + (labels or ""): float(value) for name, labels, value in METRIC.findall(text)}


def counted(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """What the server counted during the round (the counters that changed)."""
    return {
        key: after[key] - before.get(key, 0.0)
        for key in after
        if key.startswith(COUNTED) and after[key] != before.get(key, 0.0)
    }


async def settle(port: int, deadline_s: float = 20.0) -> None:
    """Until the previous round's sockets are gone (held anonymous ones end at the server's
    auth timeout), so that a round does not start inside the last one's aftermath."""
    until = time.monotonic() + deadline_s
    while time.monotonic() < until:
        gauges = await scrape(port)
        busy = gauges.get("alertwire_unauthenticated_connections_open", 0)
        busy += gauges.get('alertwire_connections_open{transport="ws"}', 0)
        busy += gauges.get('alertwire_connections_open{transport="sse"}', 0)
        if busy == 0 and gauges.get("alertwire_http_connections_open", 0) <= 2:
            return
        await asyncio.sleep(0.2)


async def run_round(
    attack: str | None, port: int, secret: str, duration_s: float, server_pid: int, cpu: int | None
) -> dict[str, Any]:
    await settle(port)
    before = await scrape(port)
    loop = asyncio.get_running_loop()
    process = None
    if attack is not None:
        ours, theirs = multiprocessing.Pipe()
        process = multiprocessing.get_context("spawn").Process(
            target=run_attack,
            args=(theirs, attack, port, secret, WARM_UP_S + duration_s + 1.0, cpu),
            daemon=True,
        )
        process.start()
        # The attack starts first and outlasts the measurement: every sample is taken
        # under it, once it has built up (sockets opened, subscriptions made).
        assert await loop.run_in_executor(None, ours.recv) == "started"
        await asyncio.sleep(WARM_UP_S)
    cpu_before, measured_from = procstat.sample(server_pid), time.monotonic()
    alerts, health = await asyncio.gather(
        _alerts(port, secret, duration_s), _health(port, duration_s)
    )
    cpu_after, elapsed = procstat.sample(server_pid), time.monotonic() - measured_from
    counts: dict[str, int] = {}
    if process is not None:
        if await loop.run_in_executor(None, ours.poll, 30.0):
            counts = await loop.run_in_executor(None, ours.recv)
        process.join(10)
        if process.is_alive():
            process.terminate()
    after = await scrape(port)
    return {
        "attack": attack or "baseline",
        "duration_s": duration_s,
        "bystander": alerts.summary(int(duration_s * ALERTS_PER_S)),
        "health": health.summary(int(duration_s * HEALTH_PER_S)),
        "attacker": counts,
        "server_counted": counted(before, after),
        "server_cpu_percent": round(100 * (cpu_after.cpu_s - cpu_before.cpu_s) / elapsed, 1),
        "server_rss_mib": round(cpu_after.rss_kib / 1024, 1),
    }
