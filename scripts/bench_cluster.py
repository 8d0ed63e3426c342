"""Cross-node delivery latency: N nodes on one PostgreSQL database, S subscribers on each,
alerts created through the first node at a fixed rate; latency from each createAlert's
scheduled send to its receipt, on the other nodes (the cluster's path: commit, NOTIFY, the
other node's fan-out) and on the node it went through. Then the same run on one node.

    python scripts/bench_cluster.py                      # 3 nodes x 100 subscribers, 100/s
    python scripts/bench_cluster.py --nodes 3 -n 100 --rate 100 --events 2000 --loop uvloop

Each run gets a database of its own on --database-url's server (created, then dropped).
Reuses bench/: the server entry, the load-generator processes, the mutation publisher and
its Pacer (scheduled-send stamps). Results: bench/results/<name>.json; see bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402

from bench import stats  # noqa: E402
from bench.fanout import (  # noqa: E402
    PROCEDURE,
    Options,
    Server,
    Worker,
    receive,
    split,
    start_server,
    start_worker,
    tokens,
)
from bench.loadgen import WorkerSpec  # noqa: E402
from bench.output import raise_file_limit, save  # noqa: E402
from bench.progress import Pacer, Progress  # noqa: E402
from bench.publisher import MutationPublisher  # noqa: E402

DEFAULT_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--nodes", type=int, default=3)
    p.add_argument("--subscribers", "-n", type=int, default=100, help="per node")
    p.add_argument("--events", "-e", type=int, default=2000)
    p.add_argument("--rate", type=float, default=100.0, help="alerts/s")
    p.add_argument("--workers", type=int, default=1, help="load-generator processes per node")
    p.add_argument("--dialect", choices=["jsonrpc", "trpc"], default="jsonrpc")
    p.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    p.add_argument("--database-url", default=DEFAULT_ADMIN, help="a server to create DBs on")
    p.add_argument("--no-single", action="store_true", help="skip the one-node run")
    p.add_argument("--name", default=None)
    p.add_argument("--no-save", action="store_true")
    return p.parse_args(argv)


async def _admin(url: str, sql: str) -> None:
    conn = await asyncpg.connect(url, timeout=10)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def fresh_database(admin_url: str) -> tuple[str, str]:
    name = f"alertwire_bench_{secrets.token_hex(4)}"
    asyncio.run(_admin(admin_url, f'CREATE DATABASE "{name}"'))
    return name, urlunsplit(urlsplit(admin_url)._replace(path=f"/{name}"))


def spawn(opts: Options, server: Server, progress: Progress, first_index: int) -> list[Worker]:
    return [
        start_worker(
            WorkerSpec(
                index=first_index + index,
                url=server.ws_url,
                dialect=opts.dialect,
                procedure=PROCEDURE,
                hospital=opts.hospital,
                tokens=tokens(server.secret, first, count, opts.hospital),
                events=opts.events,
                progress_path=progress.path,
                workers=progress.workers,
            )
        )
        for index, (first, count) in enumerate(split(opts.subscribers, opts.workers))
    ]


def run_cluster(opts: Options, nodes: int, database_url: str) -> dict[str, Any]:
    progress = Progress.create(opts.workers * nodes)
    servers: list[Server] = []
    groups: list[list[Worker]] = []
    try:
        for n in range(nodes):  # one after another: the first migrates, the others find it
            env = {**opts.server_env, "DATABASE_URL": database_url, "NODE_ID": f"bench-{n}"}
            servers.append(start_server(replace(opts, server_env=env), progress))
        for n, server in enumerate(servers):
            groups.append(spawn(opts, server, progress, n * opts.workers))
        connected = [
            sum(receive(w, 120, "ready")[1]["connected"] for w in group) for group in groups
        ]
        token = tokens(servers[0].secret, 0, 1, opts.hospital, "service")[0]
        publisher = MutationPublisher(servers[0].ws_url, opts.dialect, opts.hospital, token)
        pacer = Pacer(progress, opts.rate, opts.window, stall_s=opts.idle_s)
        report = asyncio.run(publisher.run(opts.events, pacer))
        results = []
        for group in groups:
            for _, conn in group:
                conn.send(("finish", report.ok, opts.idle_s))
            results.append([receive(w, 300, "result")[1] for w in group])
        for group in groups:
            for proc, conn in group:
                conn.send(("exit",))
                proc.join(10)
        return summarize(nodes, connected, report.as_dict(), results)
    finally:
        for group in groups:
            for proc, _ in group:
                if proc.is_alive():
                    proc.kill()
        for server in servers:
            server.stop()
        progress.close()


def latency(parts: list[dict[str, Any]]) -> dict[str, float | int]:
    worst = max((r["max_publish"] for r in parts), default=None)
    return stats.percentiles(stats.merge(r["hist_publish"] for r in parts), worst)


def summarize(
    nodes: int, connected: list[int], publish: dict[str, Any], results: list[list[dict[str, Any]]]
) -> dict[str, Any]:
    everyone = [r for group in results for r in group]
    others = [r for group in results[1:] for r in group]
    return {
        "nodes": nodes,
        "connected": connected,
        "published": publish["ok"],
        "publish_errors": publish["errors"],
        "latency_other_nodes": latency(others) if others else None,
        "latency_publishing_node": latency(results[0]),
        "lost": sum(r["lost"] for r in everyone),
        "duplicated": sum(r["duplicated"] for r in everyone),
        "misordered": sum(r["misordered"] for r in everyone),
        "closed_early": sum(r["closed_early"] for r in everyone),
    }


def line(result: dict[str, Any]) -> str:
    def fmt(lat: dict[str, Any] | None) -> str:
        if not lat:
            return "-"
        return f"p50 {lat.get('p50_ms')} p99 {lat.get('p99_ms')} max {lat.get('max_ms')} ms"

    return (
        f"{result['nodes']} node(s), {sum(result['connected'])} subscribers, "
        f"{result['published']} alerts: other nodes {fmt(result['latency_other_nodes'])}; "
        f"publishing node {fmt(result['latency_publishing_node'])}; lost {result['lost']} "
        f"dup {result['duplicated']} misordered {result['misordered']} "
        f"errors {result['publish_errors']}"
    )


def measure(opts: Options, nodes: int, admin_url: str) -> dict[str, Any]:
    name, url = fresh_database(admin_url)
    try:
        result = run_cluster(opts, nodes, url)
    finally:
        asyncio.run(_admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    print(line(result), flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    opts = Options(
        subscribers=args.subscribers,
        events=args.events,
        rate=args.rate,
        workers=args.workers,
        dialect=args.dialect,
        loop=args.loop,
    )
    raise_file_limit(args.nodes * args.subscribers + 1024)
    results = [measure(opts, args.nodes, args.database_url)]
    if not args.no_single and args.nodes > 1:
        results.append(measure(opts, 1, args.database_url))
    document: dict[str, Any] = {
        "command": " ".join(["python", "scripts/bench_cluster.py", *(argv or sys.argv[1:])]),
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "results": results,
    }
    if not args.no_save:
        name = args.name or f"cluster-{args.nodes}x{args.subscribers}-r{args.rate:g}"
        print(f"results: {save(name, document).relative_to(ROOT)}")
    clean = all(r["lost"] == 0 and r["duplicated"] == 0 for r in results)
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())
