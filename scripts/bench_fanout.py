"""Fan-out benchmark: N WebSocket subscribers, E alerts, delivered messages/s and latency.

    python scripts/bench_fanout.py                       # 1000 subscribers, saturate, createAlert
    python scripts/bench_fanout.py --rate 100 --events 1000
    python scripts/bench_fanout.py --mode service        # publish in-process through the service
    python scripts/bench_fanout.py --compare             # + bare aiohttp, official tRPC (Node)
                                                         #   and the raw-socket floor
    python scripts/bench_fanout.py --subscribers 0 --publisher-connections 8 --events 5000
                                                         # createAlert alone
    python scripts/bench_fanout.py --rate 50 --events 1500 --loop uvloop --pin --rounds 3
                                                         # Alertwire and the bare peer
                                                         #   interleaved: median p50/p99 ratios
    python scripts/bench_fanout.py --metrics-rounds 5    # Alertwire with its latency metrics on
                                                         #   and off, interleaved: what they cost

The server is started on a free port with a fresh database (or --url for a running one, with
its JWT_SECRET in the environment). Subscribers are spread over --workers load-generator
processes. Saturation publishes as fast as the slowest subscriber takes (never more than
--window alerts ahead of it). Results go to bench/results/<name>.json and one summary line per
server is printed. See bench/README.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.fanout import Options, run_round  # noqa: E402
from bench.output import raise_file_limit, save  # noqa: E402


def parse(argv: list[str] | None) -> tuple[Options, argparse.Namespace]:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--subscribers", "-n", type=int, default=1000)
    p.add_argument("--events", "-e", type=int, default=None, help="alerts (default 1000)")
    p.add_argument("--rate", type=float, default=0.0, help="alerts/s; 0 = saturate (default)")
    p.add_argument("--mode", choices=["mutation", "service"], default="mutation")
    p.add_argument("--dialect", choices=["jsonrpc", "trpc"], default="jsonrpc")
    p.add_argument("--workers", "-p", type=int, default=2, help="load-generator processes")
    p.add_argument("--window", type=int, default=256)
    p.add_argument(
        "--publisher-connections",
        type=int,
        default=8,
        help="concurrent publishers (devices); each sends its calls in order (default 8)",
    )
    p.add_argument("--in-flight", type=int, default=16, help="calls per publisher connection")
    p.add_argument("--publisher-role", default="service")
    p.add_argument("--hospital", default="h-bench")
    p.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    p.add_argument("--standin", action="store_true", help="RPC core with an in-memory hub")
    p.add_argument("--url", default=None, help="ws://host:port/api/trpc of a running server")
    p.add_argument("--server-pid", type=int, default=None, help="with --url: for CPU and RSS")
    p.add_argument(
        "--compare", action="store_true", help="also run the bare, tRPC and raw-socket peers"
    )
    p.add_argument(
        "--target",
        choices=["alertwire", "bare", "trpc", "floor"],
        default="alertwire",
        help="one server",
    )
    p.add_argument(
        "--stages",
        action="store_true",
        help="time each alert's stages inside Alertwire (call, commit, hand-off, socket write) "
        "from its scheduled send, and print them (bench/stages.py)",
    )
    p.add_argument(
        "--pin",
        action="store_true",
        help="server on one core, load generators and publisher on the others (2+ cores)",
    )
    p.add_argument(
        "--rounds",
        type=int,
        default=0,
        help="N rounds of Alertwire and the bare peer, interleaved; the median of the "
        "per-round latency ratios (from each alert's scheduled send)",
    )
    p.add_argument(
        "--metrics-rounds",
        type=int,
        default=0,
        help="N rounds of Alertwire with latency metrics on and off (ALERTWIRE_LATENCY_METRICS), "
        "interleaved; the median of the per-round on/off ratios",
    )
    p.add_argument(
        "--database-url",
        default=None,
        help="DATABASE_URL for the started server (default: a fresh SQLite file), e.g. an "
        "empty PostgreSQL database",
    )
    p.add_argument("--profile", default=None, help="py-spy raw output path (Alertwire only)")
    p.add_argument("--name", default=None, help="results file name (no extension)")
    p.add_argument("--no-save", action="store_true")
    args = p.parse_args(argv)
    opts = Options(
        target=args.target,
        mode=args.mode,
        dialect=args.dialect,
        subscribers=args.subscribers,
        events=args.events or 1000,
        rate=args.rate,
        window=args.window,
        workers=args.workers,
        publisher_connections=args.publisher_connections,
        in_flight=args.in_flight,
        publisher_role=args.publisher_role,
        hospital=args.hospital,
        url=args.url,
        server_pid=args.server_pid,
        loop=args.loop,
        standin=args.standin,
        profile=args.profile,
        pin=args.pin,
        stages=args.stages,
        server_env={"DATABASE_URL": args.database_url} if args.database_url else {},
    )
    return opts, args


def summary(result: dict[str, Any]) -> str:
    lat = result["latency_commit"] or {}
    if not lat.get("samples"):
        lat = result["latency_publish"]
    server = result["server"]
    rate = result["rate"]
    load = "saturate" if rate == "saturate" else f"{rate:g}/s"
    label = result["target"] + (" (standin)" if result.get("standin") else "")
    return (
        f"{label} {result['mode']} {result['dialect']} {result['loop']} {load}: "
        f"{result['connected']} subs x {result['published']} alerts -> "
        f"{result['delivered_per_s']:,} msg/s, {result['alerts_per_s']:,} alerts/s, "
        f"latency p50 {lat.get('p50_ms', '-')} p99 {lat.get('p99_ms', '-')} "
        f"max {lat.get('max_ms', '-')} ms, server CPU {server.get('cpu_percent', '-')}% "
        f"RSS {server.get('rss_mib_after', '-')} MiB, load generator CPU "
        f"{result['loadgen_cpu_percent']}% ({result['loadgen_loop']}), lost {result['lost']} "
        f"dup {result['duplicated']} misordered {result['misordered']} "
        f"closed {result['closed_early']}"
    )


def default_name(opts: Options, compare: bool) -> str:
    load = "sat" if not opts.rate else f"r{opts.rate:g}"
    parts = ["fanout", opts.mode, opts.dialect, load, f"{opts.subscribers}x{opts.events}"]
    if opts.standin:
        parts.append("standin")
    if opts.loop != "asyncio":
        parts.append(opts.loop)
    if opts.server_env.get("DATABASE_URL", "").startswith("postgres"):
        parts.append("postgres")
    if compare:
        parts.append("compare")
    return "-".join(parts)


def from_send(result: dict[str, Any]) -> dict[str, Any]:
    """Latency from each alert's scheduled send to receipt (the same clock for every peer)."""
    latency: dict[str, Any] = result["latency_publish"] or {}
    return latency


def interleaved(opts: Options, count: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Alertwire and the bare peer, one after the other, `count` times (the order alternating,
    so neither always runs on a warmer or quieter machine); the median of per-round ratios."""
    results: list[dict[str, Any]] = []
    rounds: list[dict[str, Any]] = []
    for index in range(count):
        order = ["alertwire", "bare"] if index % 2 == 0 else ["bare", "alertwire"]
        pair: dict[str, dict[str, Any]] = {}
        for target in order:
            result = run_round(replace(opts, target=target, profile=None))
            result["round"] = index + 1
            results.append(result)
            pair[target] = result
            sent = from_send(result)
            print(
                f"round {index + 1}: {summary(result)}; from the scheduled send "
                f"p50 {sent.get('p50_ms')} p99 {sent.get('p99_ms')} ms",
                flush=True,
            )
        ours, bare = from_send(pair["alertwire"]), from_send(pair["bare"])
        ratio = {
            key: round(ours[key] / bare[key], 3) if ours.get(key) and bare.get(key) else None
            for key in ("p50_ms", "p99_ms")
        }
        rounds.append({"round": index + 1, "alertwire": ours, "bare": bare, "ratio": ratio})
        print(f"round {index + 1}: Alertwire/bare p50 {ratio['p50_ms']} p99 {ratio['p99_ms']}")
    medians = {
        key: statistics.median(r["ratio"][key] for r in rounds if r["ratio"][key] is not None)
        for key in ("p50_ms", "p99_ms")
        if any(r["ratio"][key] is not None for r in rounds)
    }
    print(
        f"median of {count} rounds: Alertwire/bare p50 {medians.get('p50_ms')} "
        f"p99 {medians.get('p99_ms')}",
        flush=True,
    )
    return results, {"rounds": rounds, "median_ratio": medians}


METRIC_FIGURES = ("delivered_per_s", "alerts_per_s", "p50_ms", "p99_ms")


def figures(result: dict[str, Any]) -> dict[str, float | None]:
    latency = result["latency_commit"] or {}
    found = {key: result.get(key) for key in METRIC_FIGURES[:2]}
    return {**found, **{key: latency.get(key) for key in METRIC_FIGURES[2:]}}


def metrics_interleaved(opts: Options, count: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Alertwire with its latency metrics on and off, alternating which goes first; the median
    of the per-round on/off ratios of throughput and latency."""
    results: list[dict[str, Any]] = []
    rounds: list[dict[str, Any]] = []
    for index in range(count):
        order = ["on", "off"] if index % 2 == 0 else ["off", "on"]
        pair: dict[str, dict[str, float | None]] = {}
        for setting in order:
            env = {**opts.server_env, "ALERTWIRE_LATENCY_METRICS": setting}
            result = run_round(replace(opts, target="alertwire", server_env=env, profile=None))
            result.update(round=index + 1, latency_metrics=setting)
            results.append(result)
            pair[setting] = figures(result)
            print(f"round {index + 1}, metrics {setting}: {summary(result)}", flush=True)
        on, off = pair["on"], pair["off"]
        ratio = {
            key: round(on_value / off_value, 3)
            for key in METRIC_FIGURES
            if (on_value := on.get(key)) and (off_value := off.get(key))
        }
        rounds.append({"round": index + 1, "on": on, "off": off, "ratio": ratio})
        print(f"round {index + 1}: metrics on/off {ratio}", flush=True)
    medians = {
        key: statistics.median(r["ratio"][key] for r in rounds if key in r["ratio"])
        for key in METRIC_FIGURES
        if any(key in r["ratio"] for r in rounds)
    }
    print(f"median of {count} rounds, metrics on/off: {medians}", flush=True)
    return results, {"rounds": rounds, "median_ratio_on_over_off": medians}


def main(argv: list[str] | None = None) -> int:
    opts, args = parse(argv)
    raise_file_limit(opts.subscribers + 1024)
    if args.rounds or args.metrics_rounds:
        if args.metrics_rounds:
            results, comparison = metrics_interleaved(opts, args.metrics_rounds)
            suffix = f"-metrics{args.metrics_rounds}"
        else:
            results, comparison = interleaved(opts, args.rounds)
            suffix = f"-rounds{args.rounds}"
        paired: dict[str, Any] = {
            "command": " ".join(["python", "scripts/bench_fanout.py", *(argv or sys.argv[1:])]),
            "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
            "pinned": opts.pin,
            "results": results,
            **comparison,
        }
        if not args.no_save:
            name = args.name or default_name(opts, False) + suffix
            print(f"results: {save(name, paired).relative_to(ROOT)}")
        return 0 if all(r["lost"] == 0 and r["duplicated"] == 0 for r in results) else 1
    rounds = [opts]
    if args.compare:
        rounds += [
            replace(opts, target="bare", profile=None),
            replace(opts, target="trpc", mode="mutation", profile=None),
            replace(opts, target="floor", mode="mutation", profile=None),
        ]
    results = []
    for round_opts in rounds:
        result = run_round(round_opts)
        results.append(result)
        print(summary(result), flush=True)
    document: dict[str, Any] = {
        "command": " ".join(["python", "scripts/bench_fanout.py", *(argv or sys.argv[1:])]),
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "results": results,
    }
    if args.compare and not opts.rate:
        ours = results[0]["delivered_per_s"]
        ratios = {
            "alertwire_over_bare": round(ours / max(results[1]["delivered_per_s"], 1), 3),
            "alertwire_over_trpc": round(ours / max(results[2]["delivered_per_s"], 1), 3),
            "alertwire_over_floor": round(ours / max(results[3]["delivered_per_s"], 1), 3),
        }
        document["ratios"] = ratios
        print(
            f"ratios: Alertwire/bare {ratios['alertwire_over_bare']:.3f}, "
            f"Alertwire/tRPC {ratios['alertwire_over_trpc']:.3f}, "
            f"Alertwire/raw sockets {ratios['alertwire_over_floor']:.3f}",
            flush=True,
        )
    elif args.compare:  # a fixed rate: what matters is how long delivery takes, side by side
        latency = {
            r["target"]: {
                "alerts_per_s": r["alerts_per_s"],
                **{k: (r["latency_commit"] or {}).get(k) for k in ("p50_ms", "p99_ms")},
            }
            for r in results
        }
        document["latency"] = latency
        print(
            "latency p50/p99 ms (alerts/s): "
            + ", ".join(
                f"{name} {v['p50_ms']}/{v['p99_ms']} ({v['alerts_per_s']})"
                for name, v in latency.items()
            ),
            flush=True,
        )
    if not args.no_save:
        path = save(args.name or default_name(opts, args.compare), document)
        print(f"results: {path.relative_to(ROOT)}")
    clean = all(
        r["lost"] == 0 and r["duplicated"] == 0 and r["connected"] == r["subscribers"]
        for r in results
    )
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())
