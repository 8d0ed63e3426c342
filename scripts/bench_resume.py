"""Resume benchmark: a subscriber that missed M events reconnects with its lastEventId; how
long until the last missed event has arrived?

    python scripts/bench_resume.py                 # 500 missed (from the durable log), 20 rounds
    python scripts/bench_resume.py --missed 50     # inside the 100-event ring buffer

Starts the server (scripts/start_websocket_server.py) on a free port with a fresh database,
raises the alerts through `healthcare.createAlert`, then per round opens a new WebSocket,
authenticates, subscribes from the position just before the missed events and times from the
subscribe request to the receipt of the M-th event (every event checked, in order, once).
Prints p50/p99/max and writes bench/results/resume-<M>.json.
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.output import save  # noqa: E402
from rpc.auth import AuthConfig, issue_token  # noqa: E402

SECRET = secrets.token_urlsafe(32)  # a throwaway key for the benchmark's own server
LISTEN = re.compile(r"listening on http://([^:]+):(\d+)")


async def start(data: Path) -> tuple[asyncio.subprocess.Process, int]:
    env = {
        **os.environ,
        "WEBSOCKET_PORT": "0",
        "JWT_SECRET": SECRET,
        "DATABASE_URL": f"sqlite:///{data}/resume.db",
        "ALERTWIRE_DATA_DIR": str(data),
        "RATE_LIMIT_PER_10S": "0",
        "MAX_CONNECTIONS_PER_USER": "0",
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


def token(sub: str, role: str) -> str:
    return issue_token(
        AuthConfig(SECRET), sub=sub, role=role, hospitals=["h1"], ttl_seconds=3600, now=time.time()
    )


async def call(ws: aiohttp.ClientWebSocketResponse, n: int, method: str, params: Any) -> Any:
    request = {"jsonrpc": "2.0", "id": n, "method": method, "params": params}
    await ws.send_str(orjson.dumps(request).decode())
    while True:
        frame = orjson.loads((await ws.receive(timeout=30)).data)
        if frame.get("id") == n:
            if "error" in frame:
                raise SystemExit(f"{method} failed: {frame['error']['message']}")
            return frame["result"]


async def one_round(
    http: aiohttp.ClientSession, url: str, start_id: str, expect: list[str]
) -> float:
    ws = await http.ws_connect(url, headers={"Authorization": f"Bearer {token('viewer', 'nurse')}"})
    request = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "healthcare.subscribeToAlerts",
        "params": {"hospitalId": "h1", "lastEventId": start_id},
    }
    began = time.perf_counter()
    await ws.send_str(orjson.dumps(request).decode())
    got: list[str] = []
    while len(got) < len(expect):
        frame = orjson.loads((await ws.receive(timeout=30)).data)
        if frame.get("method") == "subscription":
            got.append(frame["params"]["id"])
    took = time.perf_counter() - began
    await ws.close()
    if got != expect:
        raise SystemExit("the replay was not exactly the missed events, in order")
    return took * 1000


async def run(missed: int, rounds: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        proc, port = await start(Path(tmp))
        url = f"ws://127.0.0.1:{port}/api/trpc"
        try:
            async with aiohttp.ClientSession() as http:
                device = await http.ws_connect(
                    url, headers={"Authorization": f"Bearer {token('device', 'service')}"}
                )
                alert = {"hospitalId": "h1", "type": "call_button", "priority": "high"}
                for n in range(missed + 150):  # more than the ring holds after the position
                    await call(device, n + 1, "healthcare.createAlert", {**alert, "title": f"{n}"})
                page = await call(
                    device,
                    10**6,
                    "healthcare.getAlertEvents",
                    {"hospitalId": "h1", "limit": missed + 1},
                )
                ids = [e["id"] for e in page["events"]]
                start_id, expect = ids[0], ids[1:]
                await device.close()
                times = [await one_round(http, url, start_id, expect) for _ in range(rounds)]
        finally:
            proc.terminate()
            await proc.wait()
    times.sort()
    return {
        "missed": missed,
        "rounds": rounds,
        "source": "ring buffer" if missed < 100 else "durable log",
        "p50_ms": round(statistics.median(times), 2),
        "p99_ms": round(times[min(len(times) - 1, int(len(times) * 0.99))], 2),
        "max_ms": round(times[-1], 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--missed", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args()
    result = asyncio.run(run(args.missed, args.rounds))
    print(
        f"resume: {result['missed']} missed events ({result['source']}) replayed in "
        f"p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms, max {result['max_ms']} ms "
        f"over {result['rounds']} reconnects",
        flush=True,
    )
    if not args.no_save:
        command = ["python", "scripts/bench_resume.py", *sys.argv[1:]]
        print(f"results: {save(f'resume-{args.missed}', {'command': ' '.join(command), **result})}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
