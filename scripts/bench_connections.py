"""Memory per idle connection: N authenticated WebSocket connections, each with one
`healthcare.subscribeToAlerts` subscription, held open while the server's RSS is read.

    python scripts/bench_connections.py                    # 20,000 connections, 4 processes
    python scripts/bench_connections.py -n 5000 --dialect trpc
    python scripts/bench_connections.py --nodes 3 -n 50000 -p 6   # 3 nodes of a cluster

With --nodes N (more than one) the connections are spread evenly over N nodes of one cluster
(a PostgreSQL database created for the run on --database-url's server, a Redis prefix of its
own on --redis-url; both removed afterwards: bench/cluster_nodes.py), each node with its own
load-generator processes, and the RSS is the sum over the nodes.

Reports (bench/results/connections-<N>.json and one line): server RSS before the first
connection and with all N held, (RSS delta) / N, the time from the first connect until all N
were subscribed, and the server's CPU time for it. Raises RLIMIT_NOFILE for itself, the server
and the load generators (as root it may raise the hard limit too). Each connection uses its own
token (distinct `sub`), so MAX_CONNECTIONS_PER_USER does not apply; MAX_CONNECTIONS is set to
N + 100 (per node: its share + 100). On this 2-core machine the load-generator processes share
the cores with the server, so the accept time is an upper bound.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import procstat  # noqa: E402
from bench.cluster_nodes import DEFAULT_POSTGRES, DEFAULT_REDIS, cluster_nodes  # noqa: E402
from bench.fanout import (  # noqa: E402
    PROCEDURE,
    Options,
    Server,
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


def spawn(
    n: int, workers: int, url: str, secret: str, dialect: str, hospital: str, offset: int = 0
) -> list[Worker]:
    """`n` connections to `url` over `workers` processes; token subjects from `offset` on."""
    return [
        start_worker(
            WorkerSpec(
                index=index,
                url=url,
                dialect=dialect,
                procedure=PROCEDURE,
                hospital=hospital,
                tokens=tokens(secret, offset + first, count, hospital),
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
    if args.trace_memory:
        args.trace_path = str(Path(progress.path).with_suffix(".memory"))
        opts.server_env["BENCH_TRACEMALLOC"] = args.trace_path
    if args.nodes <= 1:
        server = start_server(opts, progress)
        try:
            return hold(args, [server], server.secret)
        finally:
            stop_all([], server, progress)
    per_node = split(args.connections, args.nodes)
    opts.server_env["MAX_CONNECTIONS"] = str(max(count for _, count in per_node) + 100)
    try:
        with cluster_nodes(
            opts, args.nodes, progress, args.database_url, args.redis_url or None
        ) as cluster:
            return hold(args, cluster.nodes, cluster.secret)
    finally:
        progress.close()


def hold(args: argparse.Namespace, servers: list[Server], secret: str) -> dict[str, Any]:
    """Connect and subscribe every connection (spread evenly over `servers`), hold them, and
    measure the servers' resident memory before and with them all."""
    pids = [server.pid for server in servers if server.pid is not None]
    assert len(pids) == len(servers)
    workers: list[Worker] = []
    try:
        time.sleep(SETTLE_S)
        before = [procstat.sample(pid) for pid in pids]
        t0 = time.time()
        for server, (first, count) in zip(
            servers, split(args.connections, len(servers)), strict=True
        ):
            share = max(1, args.workers // len(servers))
            workers += spawn(
                count, share, server.ws_url, secret, args.dialect, "h-bench", offset=first
            )
        ready = [receive(w, 900, "ready")[1] for w in workers]
        accepted_s = time.time() - t0
        connected = sum(info["connected"] for info in ready)
        after_connect = [procstat.sample(pid) for pid in pids]
        time.sleep(SETTLE_S)
        held = [procstat.sample(pid) for pid in pids]
        allocations = trace_memory(servers[0], args.trace_path) if args.trace_memory else None
        for _, conn in workers:
            conn.send(("exit",))
        for proc, _ in workers:
            proc.join(30)
        delta_kib = sum(h.rss_kib - b.rss_kib for h, b in zip(held, before, strict=True))
        return {
            "command": " ".join(["python", "scripts/bench_connections.py", *sys.argv[1:]]),
            "connections": args.connections,
            "connected": connected,
            "nodes": len(servers),
            "errors": [e for info in ready for e in info["errors"]][:5],
            "dialect": args.dialect,
            "loop": args.loop,
            "standin": args.standin,
            "load_generator_processes": len(workers),
            "seconds_to_accept_and_subscribe": round(accepted_s, 2),
            "connect_seconds_per_process": [round(info["connect_s"], 2) for info in ready],
            "server_cpu_s_to_accept": round(
                sum(a.cpu_s - b.cpu_s for a, b in zip(after_connect, before, strict=True)), 2
            ),
            "rss_mib_before": round(sum(b.rss_kib for b in before) / 1024, 1),
            "rss_mib_held": round(sum(h.rss_kib for h in held) / 1024, 1),
            "rss_mib_held_per_node": [round(h.rss_kib / 1024, 1) for h in held],
            "rss_mib_peak": round(sum(h.peak_rss_kib for h in held) / 1024, 1),
            "kib_per_connection": round(delta_kib / max(connected, 1), 2),
            "allocations": allocations,
        }
    finally:
        for proc, _ in workers:
            if proc.is_alive():
                proc.kill()


def trace_memory(server: Server, path: str) -> list[str] | None:
    """Ask the server where its live memory was allocated (bench.server_entry, SIGUSR1)."""
    if server.pid is None:
        return None
    target = Path(path)
    target.unlink(missing_ok=True)
    os.kill(server.pid, signal.SIGUSR1)
    deadline = time.monotonic() + 120
    while not target.exists():
        if time.monotonic() > deadline:
            return None
        time.sleep(0.2)
    lines = target.read_text().splitlines()
    for line in lines[:25]:
        print(line)
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--connections", "-n", type=int, default=20_000)
    parser.add_argument("--workers", "-p", type=int, default=4, help="load-generator processes")
    parser.add_argument("--nodes", type=int, default=1, help="cluster nodes to spread over")
    parser.add_argument("--database-url", default=DEFAULT_POSTGRES, help="with --nodes")
    parser.add_argument("--redis-url", default=DEFAULT_REDIS, help="with --nodes ('' for none)")
    parser.add_argument("--dialect", choices=["jsonrpc", "trpc"], default="jsonrpc")
    parser.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    parser.add_argument("--standin", action="store_true", help="RPC core with an in-memory hub")
    parser.add_argument(
        "--trace-memory",
        action="store_true",
        help="trace the server's allocations and print where the held memory lives "
        "(one node; tracing adds its own memory, so the RSS figure is not comparable)",
    )
    parser.add_argument("--name", default=None)
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args()
    # Each load-generator process holds its share; servers and generators inherit this limit.
    raise_file_limit(args.connections + 1024)
    result = measure(args)
    print(
        f"{result['connected']}/{result['connections']} idle subscribed connections "
        f"on {result['nodes']} node(s) "
        f"({args.dialect}, {args.loop}{', standin' if args.standin else ''}): "
        f"{result['kib_per_connection']} KiB each (RSS {result['rss_mib_before']} -> "
        f"{result['rss_mib_held']} MiB), accepted and subscribed in "
        f"{result['seconds_to_accept_and_subscribe']} s "
        f"(server CPU {result['server_cpu_s_to_accept']} s)",
        flush=True,
    )
    if not args.no_save:
        suffix = "-standin" if args.standin else ""
        nodes = f"-{args.nodes}nodes" if args.nodes > 1 else ""
        name = args.name or f"connections-{args.dialect}-{args.connections}{nodes}{suffix}"
        print(f"results: {save(name, result).relative_to(ROOT)}")
    return 0 if result["connected"] == result["connections"] else 1


if __name__ == "__main__":
    sys.exit(main())
