"""Memory per idle connection: N authenticated WebSocket connections, each with one
`healthcare.subscribeToAlerts` subscription, held open while the server's RSS is read.

    python scripts/bench_connections.py                    # 20,000 connections, 4 processes
    python scripts/bench_connections.py -n 5000 --dialect trpc

Reports (bench/results/connections-<N>.json and one line): server RSS before the first
connection and with all N held, (RSS delta) / N, the time from the first connect until all N
were subscribed, and the server's CPU time for it. Raises RLIMIT_NOFILE for itself, the server
and the load generators (as root it may raise the hard limit too). Each connection uses its own
token (distinct `sub`), so MAX_CONNECTIONS_PER_USER does not apply; MAX_CONNECTIONS is set to
N + 100. On this 2-core machine the load-generator processes share the cores with the server,
so the accept time is an upper bound.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import procstat  # noqa: E402
from bench.fanout import (  # noqa: E402
    PROCEDURE,
    Options,
    Worker,
    receive,
    split,
    start_server,
    start_worker,
    stop_all,
    tokens,
)
from bench.loadgen import WorkerSpec  # noqa: E402
from bench.output import raise_file_limit, save  # noqa: E402
from bench.progress import Progress  # noqa: E402

SETTLE_S = 3.0


def spawn(n: int, workers: int, url: str, secret: str, dialect: str, hospital: str) -> list[Worker]:
    return [
        start_worker(
            WorkerSpec(
                index=index,
                url=url,
                dialect=dialect,
                procedure=PROCEDURE,
                hospital=hospital,
                tokens=tokens(secret, first, count, hospital),
                events=1,
                progress_path=None,
                workers=0,
                connect_concurrency=32,
                connect_timeout_s=120.0,
            )
        )
        for index, (first, count) in enumerate(split(n, workers))
    ]


def measure(args: argparse.Namespace) -> dict[str, Any]:
    opts = Options(
        subscribers=args.connections, standin=args.standin, loop=args.loop, dialect=args.dialect
    )
    progress = Progress.create(0)
    server = start_server(opts, progress)
    workers: list[Worker] = []
    try:
        assert server.pid is not None
        time.sleep(SETTLE_S)
        before = procstat.sample(server.pid)
        t0 = time.time()
        workers = spawn(
            args.connections, args.workers, server.ws_url, server.secret, args.dialect, "h-bench"
        )
        ready = [receive(w, 600, "ready")[1] for w in workers]
        accepted_s = time.time() - t0
        connected = sum(info["connected"] for info in ready)
        after_connect = procstat.sample(server.pid)
        time.sleep(SETTLE_S)
        held = procstat.sample(server.pid)
        for _, conn in workers:
            conn.send(("exit",))
        for proc, _ in workers:
            proc.join(30)
        delta_kib = held.rss_kib - before.rss_kib
        return {
            "command": " ".join(["python", "scripts/bench_connections.py", *sys.argv[1:]]),
            "connections": args.connections,
            "connected": connected,
            "errors": [e for info in ready for e in info["errors"]][:5],
            "dialect": args.dialect,
            "loop": args.loop,
            "standin": args.standin,
            "load_generator_processes": args.workers,
            "seconds_to_accept_and_subscribe": round(accepted_s, 2),
            "connect_seconds_per_process": [round(info["connect_s"], 2) for info in ready],
            "server_cpu_s_to_accept": round(after_connect.cpu_s - before.cpu_s, 2),
            "rss_mib_before": round(before.rss_kib / 1024, 1),
            "rss_mib_held": round(held.rss_kib / 1024, 1),
            "rss_mib_peak": round(held.peak_rss_kib / 1024, 1),
            "kib_per_connection": round(delta_kib / max(connected, 1), 2),
        }
    finally:
        stop_all(workers, server, progress)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--connections", "-n", type=int, default=20_000)
    parser.add_argument("--workers", "-p", type=int, default=4, help="load-generator processes")
    parser.add_argument("--dialect", choices=["jsonrpc", "trpc"], default="jsonrpc")
    parser.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    parser.add_argument("--standin", action="store_true", help="RPC core with an in-memory hub")
    parser.add_argument("--name", default=None)
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args()
    raise_file_limit(args.connections + 1024)
    result = measure(args)
    print(
        f"{result['connected']}/{result['connections']} idle subscribed connections "
        f"({args.dialect}, {args.loop}{', standin' if args.standin else ''}): "
        f"{result['kib_per_connection']} KiB each (RSS {result['rss_mib_before']} -> "
        f"{result['rss_mib_held']} MiB), accepted and subscribed in "
        f"{result['seconds_to_accept_and_subscribe']} s "
        f"(server CPU {result['server_cpu_s_to_accept']} s)",
        flush=True,
    )
    if not args.no_save:
        suffix = "-standin" if args.standin else ""
        name = args.name or f"connections-{args.dialect}-{args.connections}{suffix}"
        print(f"results: {save(name, result).relative_to(ROOT)}")
    return 0 if result["connected"] == result["connections"] else 1


if __name__ == "__main__":
    sys.exit(main())
