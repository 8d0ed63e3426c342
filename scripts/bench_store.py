"""The SQLite store's write path alone, in-process: `AlertService.create` against a fresh file.

    python scripts/bench_store.py                          # 8 devices, 5,000 alerts, flat out
    python scripts/bench_store.py --devices 1
    python scripts/bench_store.py --rate 50 --flush-ms 11 --events 500
                                                           # fixed rate, each published event
                                                           # holding the loop as a flush would

Reported per round: alerts/s, write batches, calls handed to the database threads per batch
(every `aiosqlite` call is one hop to a connection's thread and one reply back through the
event loop; counted at aiosqlite's queue, so it measures the store whatever its code), and
`create` latency: from the call at full speed, from its scheduled time at a fixed rate.
`--flush-ms` stands in for a fan-out flush: each committed event keeps the loop busy
that long, so a reply from the database thread that lands meanwhile waits for it. With
`--rounds N` the medians of the rounds are printed too; `--name` writes every figure to
bench/results/<name>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.output import save  # noqa: E402
from schemas.alerts import CreateAlertInput  # noqa: E402
from services.alerts import AlertService  # noqa: E402
from services.config import DEFAULT_TARGETS  # noqa: E402
from services.store import StoredEvent  # noqa: E402
from services.store_sqlite import SqliteAlertStore  # noqa: E402

WARM_UP = 50


class QueueCounter:
    """Stands in front of an aiosqlite connection's queue to its thread and counts what goes
    through (each item is one function run on that thread, answered through the loop)."""

    def __init__(self, queue: Any) -> None:
        self.queue = queue
        self.calls = 0

    def put_nowait(self, item: Any) -> None:
        self.calls += 1
        self.queue.put_nowait(item)


def alert(n: int) -> CreateAlertInput:
    return CreateAlertInput(
        hospital_id="h-bench",
        type="call_button",
        priority="high",
        title=f"bench-{n}",
        patient_id="p-bench",
        location="Ward 1, bed 1",
    )


def busy(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


async def flat_out(alerts: AlertService, devices: int, events: int) -> list[float]:
    latencies: list[float] = []
    numbers = iter(range(events))

    async def device() -> None:
        for n in numbers:
            start = time.perf_counter()
            await alerts.create(alert(n), "device")
            latencies.append(time.perf_counter() - start)

    await asyncio.gather(*(device() for _ in range(devices)))
    return latencies


async def fixed_rate(alerts: AlertService, rate: float, events: int) -> list[float]:
    latencies: list[float] = []

    async def one(n: int, due: float) -> None:
        await alerts.create(alert(n), "device")
        latencies.append(time.perf_counter() - due)

    calls = []
    start = time.perf_counter()
    for n in range(events):
        due = start + n / rate
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        calls.append(asyncio.create_task(one(n, due)))
    await asyncio.gather(*calls)
    return latencies


async def run_round(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteAlertStore(str(Path(tmp) / "bench.db"), args.synchronous)
        await store.open()
        loop = asyncio.get_running_loop()

        def on_commit(events: Sequence[StoredEvent]) -> None:
            for _ in events:  # each event's flush runs after the commit, one after another
                loop.call_soon(busy, args.flush_ms / 1000)

        store.on_commit = on_commit if args.flush_ms else (lambda events: None)
        alerts = AlertService(store, dict(DEFAULT_TARGETS))
        try:
            await flat_out(alerts, 1, WARM_UP)
            writer = QueueCounter(store._db._tx)  # type: ignore[union-attr]
            reader = QueueCounter(store._reader._tx)  # type: ignore[union-attr]
            store._db._tx, store._reader._tx = writer, reader  # type: ignore[union-attr]
            commits = store.commits
            start = time.perf_counter()
            if args.rate:
                latencies = await fixed_rate(alerts, args.rate, args.events)
            else:
                latencies = await flat_out(alerts, args.devices, args.events)
            elapsed = time.perf_counter() - start
            batches = store.commits - commits
            calls = writer.calls, reader.calls  # before closing, which takes two more each
        finally:
            await store.close()
    latencies.sort()
    return {
        "alerts_per_s": round(args.events / elapsed),
        "batches": batches,
        "writer_calls_per_batch": round(calls[0] / batches, 2),
        "reader_calls": calls[1],
        "p50_ms": round(latencies[len(latencies) // 2] * 1000, 3),
        "p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 3),
    }


def line(result: dict[str, Any]) -> str:
    return ", ".join(f"{key} {value}" for key, value in result.items())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--devices", type=int, default=8, help="concurrent callers at full speed")
    p.add_argument("--events", type=int, default=5000)
    p.add_argument("--rate", type=float, default=0.0, help="alerts/s; 0 = flat out (default)")
    p.add_argument("--flush-ms", type=float, default=0.0, help="loop time held per event")
    p.add_argument("--synchronous", default="FULL", help="PRAGMA synchronous")
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    p.add_argument("--name", default=None, help="also write bench/results/<name>.json")
    args = p.parse_args(argv)
    if args.loop == "uvloop":
        import uvloop

        uvloop.install()
    results = []
    for _ in range(args.rounds):
        results.append(asyncio.run(run_round(args)))
        print(line(results[-1]), flush=True)
    medians = {key: round(statistics.median(r[key] for r in results), 3) for key in results[0]}
    if args.rounds > 1:
        print("median: " + line(medians), flush=True)
    if args.name:
        document = {
            "command": " ".join(["python", "scripts/bench_store.py", *(argv or sys.argv[1:])]),
            "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
            "rounds": results,
            "median": medians,
        }
        print(f"results: {save(args.name, document).relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
