"""`healthcare.createAlert` through N nodes of one cluster on PostgreSQL: alerts committed per
second, each commit durable (the store's connections run with synchronous_commit on; the
run records the server's fsync and synchronous_commit settings), with the publishers spread
evenly over the nodes.

    python scripts/bench_cluster_writes.py                         # 3 nodes, 1 hospital
    python scripts/bench_cluster_writes.py --hospitals 3 --events 60000

Each node gets `--connections` device connections (each with up to `--in-flight` calls
outstanding, as bench/publisher.py drives them) from one publisher process. With
`--hospitals H` the devices of node n raise alerts in hospital n mod H: one hospital means
every node writes to the same stream (the nodes contend for its position counter, and a batch
that loses is numbered again); one per node is a hospital group whose sites each reach one
node. Afterwards the log is checked: one event per successful call, each hospital's positions
1..n with no gap. Results: bench/results/<name>.json; commands in bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402

from bench import procstat, stats  # noqa: E402
from bench.cluster_nodes import DEFAULT_POSTGRES, DEFAULT_REDIS, cluster_nodes  # noqa: E402
from bench.fanout import Options, Server, tokens  # noqa: E402
from bench.output import save  # noqa: E402
from bench.progress import Pacer, Progress  # noqa: E402
from bench.publisher import MutationPublisher, PublishReport  # noqa: E402

LOG_CHECK = """
SELECT hospital_id, COUNT(*), MIN(seq), MAX(seq) FROM events GROUP BY hospital_id
"""


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--nodes", type=int, default=3)
    p.add_argument("--events", "-e", type=int, default=30_000)
    p.add_argument("--hospitals", type=int, default=1)
    p.add_argument("--connections", type=int, default=8, help="device connections per node")
    p.add_argument("--in-flight", type=int, default=16, help="calls outstanding per connection")
    p.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    p.add_argument("--database-url", default=DEFAULT_POSTGRES, help="a server to create DBs on")
    p.add_argument("--redis-url", default=DEFAULT_REDIS, help="'' for none")
    p.add_argument("--name", default=None)
    p.add_argument("--no-save", action="store_true")
    return p.parse_args(argv)


async def publish(
    nodes: list[Server], secret: str, args: argparse.Namespace
) -> list[PublishReport]:
    publishers = []
    for n, node in enumerate(nodes):
        hospital = f"h-bench-{n % args.hospitals}"
        token = tokens(secret, n, 1, hospital, "service")[0]
        publishers.append(
            MutationPublisher(
                node.ws_url,
                "jsonrpc",
                hospital,
                token,
                connections=args.connections,
                in_flight=args.in_flight,
            )
        )
    shares = [args.events // len(nodes) + (n < args.events % len(nodes)) for n in range(len(nodes))]
    pacers = [Pacer(None, 0.0, 0, stall_s=30.0) for _ in nodes]
    return list(
        await asyncio.gather(
            *(
                p.run(share, pacer)
                for p, share, pacer in zip(publishers, shares, pacers, strict=True)
            )
        )
    )


async def inspect(url: str) -> dict[str, Any]:
    """The log as committed, and the durability settings every commit ran under."""
    conn = await asyncpg.connect(url, timeout=10)
    try:
        rows = await conn.fetch(LOG_CHECK)
        settings = {
            name: await conn.fetchval(f"SHOW {name}")
            for name in ("fsync", "synchronous_commit", "wal_sync_method", "full_page_writes")
        }
    finally:
        await conn.close()
    return {
        "events_by_hospital": {str(r[0]): int(r[1]) for r in rows},
        "dense": all(int(r[2]) == 1 and int(r[3]) == int(r[1]) for r in rows),
        "server_settings": settings,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    opts = Options(subscribers=0, loop=args.loop)
    progress = Progress.create(0)
    try:
        with cluster_nodes(
            opts, args.nodes, progress, args.database_url, args.redis_url or None
        ) as cluster:
            pids = [node.pid for node in cluster.nodes if node.pid is not None]
            before = [procstat.sample(pid) for pid in pids]
            reports = asyncio.run(publish(cluster.nodes, cluster.secret, args))
            after = [procstat.sample(pid) for pid in pids]
            parts = urlsplit(args.database_url)
            log = asyncio.run(inspect(urlunsplit(parts._replace(path=f"/{cluster.database}"))))
    finally:
        progress.close()
    ok = sum(r.ok for r in reports)
    start = min(r.first_send for r in reports if r.first_send)
    end = max(r.last_reply for r in reports)
    return {
        "command": " ".join(["python", "scripts/bench_cluster_writes.py", *sys.argv[1:]]),
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "nodes": args.nodes,
        "hospitals": args.hospitals,
        "connections_per_node": args.connections,
        "in_flight": args.in_flight,
        "loop": args.loop,
        "sent": sum(r.sent for r in reports),
        "ok": ok,
        "errors": sum(r.errors for r in reports),
        "error_samples": [s for r in reports for s in r.error_samples][:5],
        "seconds": round(end - start, 2),
        "alerts_per_s": round(ok / max(end - start, 1e-9)),
        "per_node_ok": [r.ok for r in reports],
        "node_cpu_s": [round(a.cpu_s - b.cpu_s, 2) for a, b in zip(after, before, strict=True)],
        "call_latency": stats.percentiles(
            stats.merge({i: n for i, n in enumerate(r.hist) if n} for r in reports)
        ),
        "log": log,
        "log_matches": sum(log["events_by_hospital"].values()) == ok and log["dense"],
    }


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    wall = time.time()
    result = run(args)
    lat = result["call_latency"]
    print(
        f"{result['ok']} alerts through {result['nodes']} nodes ({result['hospitals']} "
        f"hospital(s), {args.connections}x{args.in_flight} per node): "
        f"{result['alerts_per_s']} /s, call p50 {lat.get('p50_ms')} p99 {lat.get('p99_ms')} ms, "
        f"errors {result['errors']}, log matches: {result['log_matches']} "
        f"({round(time.time() - wall)} s in all)",
        flush=True,
    )
    if not args.no_save:
        name = args.name or f"cluster-writes-{args.nodes}x-h{args.hospitals}"
        print(f"results: {save(name, result).relative_to(ROOT)}")
    return 0 if result["log_matches"] and not result["errors"] else 1


if __name__ == "__main__":
    sys.exit(main())
