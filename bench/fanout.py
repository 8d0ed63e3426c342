"""One fan-out round: start a target server, connect the subscribers from worker processes,
publish, collect, measure. Used by scripts/bench_fanout.py."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from bench import procstat, stages, stats
from bench.loadgen import WorkerSpec, run_worker
from bench.progress import DONE, ERRORS, PUBLISHED, STARTED_US, Pacer, Progress
from bench.publisher import MutationPublisher
from rpc.auth import AuthConfig, issue_token

ROOT = Path(__file__).resolve().parent.parent
NODE_PEER = ROOT / "bench" / "peers" / "trpc-node"
LISTEN = re.compile(r"listening on http://([^:\s]+):(\d+)")
PROCEDURE = "healthcare.subscribeToAlerts"


@dataclass
class Options:
    target: str = "alertwire"  # alertwire | bare | floor | trpc
    mode: str = "mutation"  # mutation | service
    dialect: str = "jsonrpc"
    subscribers: int = 1000
    events: int = 1000
    rate: float = 0.0  # alerts/s; 0 = saturate
    window: int = 256  # alerts ahead of the slowest subscriber
    workers: int = 2
    publisher_connections: int = 1
    in_flight: int = 16
    publisher_role: str = "service"
    hospital: str = "h-bench"
    url: str | None = None  # an already running server (secret from JWT_SECRET)
    server_pid: int | None = None
    loop: str = "asyncio"
    standin: bool = False
    idle_s: float = 10.0
    profile: str | None = None  # a path: py-spy records the server while publishing
    server_env: dict[str, str] = field(default_factory=dict)
    pin: bool = False  # the server on one core, load generators and publisher on the others
    stages: bool = False  # Alertwire times each alert's stages inside (bench/stages.py)


def cores(pin: bool) -> tuple[set[int] | None, set[int] | None]:
    """(the server's cores, everyone else's) when pinning on a machine with two or more."""
    available = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if not pin or len(available) < 2:
        return None, None
    return {available[0]}, set(available[1:])


def pin_to(pid: int, cpus: set[int] | None) -> None:
    if cpus is not None:
        os.sched_setaffinity(pid, cpus)


@dataclass
class Server:
    proc: subprocess.Popen[bytes] | None
    pid: int | None
    ws_url: str
    secret: str
    log_path: Path | None
    workdir: Path | None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)


def ensure_node_peer() -> None:
    """Install the tRPC peer's npm packages (npm ci with the lock file) when missing."""
    if (NODE_PEER / "node_modules" / "@trpc" / "server").is_dir():
        return
    command = "ci" if (NODE_PEER / "package-lock.json").exists() else "install"
    npm = shutil.which("npm") or "npm"
    subprocess.run(  # noqa: S603 - fixed arguments
        [npm, command, "--no-audit", "--no-fund"], cwd=NODE_PEER, check=True, timeout=600
    )


def _command(opts: Options, progress: Progress) -> tuple[list[str], Path]:
    service = ["--progress", progress.path, "--workers", str(progress.workers)]
    service += ["--hospital", opts.hospital]
    if opts.target == "alertwire":
        command = [sys.executable, "-m", "bench.server_entry", "--loop", opts.loop]
        if opts.standin:
            command.append("--standin")
        return command + (service if opts.mode == "service" else []), ROOT
    if opts.target == "floor":
        return [sys.executable, "-m", "bench.peers.raw_floor"], ROOT
    if opts.target == "bare":
        command = [sys.executable, "-m", "bench.peers.bare_aiohttp", "--loop", opts.loop]
        return command + (service if opts.mode == "service" else []), ROOT
    ensure_node_peer()
    return ["node", "server.mjs"], NODE_PEER


def start_server(opts: Options, progress: Progress) -> Server:
    if opts.url is not None:
        secret = os.environ.get("JWT_SECRET", "")
        return Server(None, opts.server_pid, opts.url, secret, None, None)
    workdir = Path(tempfile.mkdtemp(prefix="alertwire-bench-"))
    secret = secrets.token_urlsafe(48)
    env = {
        **os.environ,
        "WEBSOCKET_PORT": "0",
        "PORT": "0",
        "DATABASE_URL": f"sqlite:///{workdir}/bench.db",
        "ALERTWIRE_DATA_DIR": str(workdir / "data"),
        "JWT_SECRET": secret,
        "RATE_LIMIT_PER_10S": "0",
        "MAX_CONNECTIONS_PER_USER": "0",
        "MAX_CONNECTIONS": str(max(10_000, opts.subscribers + 100)),
        "LOG_LEVEL": "WARNING",
        "NODE_ENV": "production",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        **opts.server_env,
    }
    command, cwd = _command(opts, progress)
    log_path = workdir / "server.log"
    server_cpus, _ = cores(opts.pin)
    if server_cpus is not None:  # from the start, so every thread it makes inherits it
        command = ["taskset", "-c", ",".join(map(str, sorted(server_cpus))), *command]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(  # noqa: S603 - our own server commands
            command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        match = LISTEN.search(log_path.read_text(errors="replace"))
        if match:
            path = "/" if opts.target == "trpc" else "/api/trpc"
            url = f"ws://127.0.0.1:{match.group(2)}{path}"
            return Server(proc, proc.pid, url, secret, log_path, workdir)
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"{opts.target} did not start: {log_path.read_text()[-3000:]}")


def tokens(secret: str, first: int, count: int, hospital: str, role: str = "nurse") -> list[str]:
    if not secret:
        return [""] * count
    config = AuthConfig(secret)
    now = time.time()
    return [
        issue_token(
            config, sub=f"bench-{i}", role=role, hospitals=[hospital], ttl_seconds=7200, now=now
        )
        for i in range(first, first + count)
    ]


Worker = tuple[multiprocessing.process.BaseProcess, Connection]


def split(total: int, parts: int) -> list[tuple[int, int]]:
    """(first, count) of each of `parts` near-equal shares of `total`."""
    per, extra = divmod(total, max(parts, 1))
    shares: list[tuple[int, int]] = []
    first = 0
    for index in range(parts):
        count = per + (1 if index < extra else 0)
        shares.append((first, count))
        first += count
    return shares


def start_worker(spec: WorkerSpec) -> Worker:
    """A load-generator process running `spec`, with the pipe it reports on."""
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    proc = context.Process(target=run_worker, args=(spec, child), daemon=True)
    proc.start()
    return proc, parent


def stop_all(workers: list[Worker], server: Server, progress: Progress) -> None:
    """Whatever happened: no load-generator process, server or progress file outlives a run."""
    for proc, _ in workers:
        if proc.is_alive():
            proc.kill()
    server.stop()
    progress.close()


def spawn_workers(opts: Options, server: Server, progress: Progress, dialect: str) -> list[Worker]:
    parts = opts.workers if opts.subscribers else 0
    workers = [
        start_worker(
            WorkerSpec(
                index=index,
                url=server.ws_url,
                dialect=dialect,
                procedure=PROCEDURE,
                hospital=opts.hospital,
                tokens=tokens(server.secret, first, count, opts.hospital),
                events=opts.events,
                progress_path=progress.path,
                workers=progress.workers,
            )
        )
        for index, (first, count) in enumerate(split(opts.subscribers, parts))
    ]
    _, others = cores(opts.pin)
    for proc, _ in workers:
        if proc.pid is not None:
            pin_to(proc.pid, others)
    return workers


def receive(worker: Worker, timeout: float, what: str) -> Any:
    proc, conn = worker
    deadline = time.monotonic() + timeout
    while not conn.poll(0.1):
        if not proc.is_alive():
            raise RuntimeError(f"a load-generator process died (exit {proc.exitcode})")
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {what} from a load-generator process within {timeout:.0f} s")
    return conn.recv()


def dialect_for(opts: Options) -> str:
    return {"bare": "jsonrpc", "floor": "jsonrpc", "trpc": "trpc"}.get(opts.target, opts.dialect)


class Profiler:
    """py-spy on the server process while the publisher runs (raw collapsed stacks)."""

    def __init__(self, path: str | None, pid: int | None) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        if path and pid:
            spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
            self.proc = subprocess.Popen(  # noqa: S603 - fixed arguments
                [
                    spy,
                    *("record", "--pid", str(pid), "--format", "raw", "--rate", "200"),
                    *("--nonblocking", "--output", path),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            time.sleep(1.0)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGINT)
            self.proc.wait(30)


def run_round(opts: Options) -> dict[str, Any]:
    pin_to(os.getpid(), cores(opts.pin)[1])  # the publisher runs here
    dialect = dialect_for(opts)
    stages_path: Path | None = None
    if opts.stages and opts.target == "alertwire" and opts.url is None:
        handle, name = tempfile.mkstemp(prefix="alertwire-stages-", suffix=".json")
        os.close(handle)
        stages_path = Path(name)
        opts = replace(opts, server_env={**opts.server_env, "BENCH_STAGES": name})
    progress = Progress.create(opts.workers if opts.subscribers else 0)
    server = start_server(opts, progress)
    workers: list[Worker] = []
    try:
        workers = spawn_workers(opts, server, progress, dialect)
        ready = [receive(w, 120 + opts.subscribers / 50, "ready") for w in workers]
        connect_errors = [e for _, info in ready for e in info["errors"]]
        connected = sum(info["connected"] for _, info in ready)
        pid = server.pid
        before = procstat.sample(pid) if pid else None
        profiler = Profiler(opts.profile, pid)
        wall0 = time.time()
        publish = _publish(opts, server, progress, dialect)
        published = int(publish["published"])
        profiler.stop()
        for _, conn in workers:
            conn.send(("finish", published, opts.idle_s))
        results = [receive(w, 300, "result")[1] for w in workers]
        wall1 = time.time()
        after = procstat.sample(pid) if pid else None
        for _, conn in workers:
            conn.send(("exit",))
        for proc, _ in workers:
            proc.join(10)
        report = _report(
            opts, dialect, publish, results, connected, connect_errors, before, after, wall0, wall1
        )
    finally:
        stop_all(workers, server, progress)
    if stages_path is not None:
        summary = stages.read(stages_path)
        stages_path.unlink(missing_ok=True)
        if summary is not None:
            report["stages"] = summary
            print(stages.table(summary), flush=True)
    return report


def _publish(opts: Options, server: Server, progress: Progress, dialect: str) -> dict[str, Any]:
    if opts.mode == "service" and opts.target in ("alertwire", "bare"):
        progress.start(opts.events, opts.rate, opts.window)
        deadline = time.monotonic() + 600
        while not progress.slots[DONE] and time.monotonic() < deadline:
            time.sleep(0.005)
        end = time.time()
        start = progress.slots[STARTED_US] / 1e6
        return {
            "mode": "service",
            "published": progress.slots[PUBLISHED],
            "errors": progress.slots[ERRORS],
            "first_send": start,
            "publish_end": end,
        }
    token = tokens(server.secret, 0, 1, opts.hospital, opts.publisher_role)[0]
    publisher = MutationPublisher(
        server.ws_url,
        dialect,
        opts.hospital,
        token,
        connections=opts.publisher_connections,
        in_flight=opts.in_flight,
    )
    pacer = Pacer(progress, opts.rate, opts.window, stall_s=opts.idle_s)
    report = asyncio.run(publisher.run(opts.events, pacer))
    return {
        "mode": "mutation",
        "published": report.ok,
        "publish_end": report.last_reply,
        **report.as_dict(),
        "mutation_latency": stats.percentiles({i: n for i, n in enumerate(report.hist) if n}),
    }


def _report(
    opts: Options,
    dialect: str,
    publish: dict[str, Any],
    results: list[dict[str, Any]],
    connected: int,
    connect_errors: list[str],
    before: procstat.Sample | None,
    after: procstat.Sample | None,
    wall0: float,
    wall1: float,
) -> dict[str, Any]:
    published = int(publish["published"])
    received = sum(r["received"] for r in results)
    start = float(publish["first_send"]) or wall0
    last = max((r["last"] for r in results), default=0.0)
    span = max(last - start, 1e-9) if received else 0.0
    publish_span = max(float(publish["publish_end"]) - start, 1e-9)

    def total(key: str) -> int:
        return sum(int(r[key]) for r in results)

    server: dict[str, Any] = {}
    if before is not None and after is not None:
        busy = after.cpu_s - before.cpu_s
        server = {
            "cpu_s": round(busy, 3),
            "cpu_percent": round(100 * busy / max(wall1 - wall0, 1e-9), 1),
            "rss_mib_before": round(before.rss_kib / 1024, 1),
            "rss_mib_after": round(after.rss_kib / 1024, 1),
            "rss_mib_peak": round(after.peak_rss_kib / 1024, 1),
        }
    return {
        "target": opts.target,
        "mode": publish["mode"],
        "dialect": dialect,
        "loop": {"trpc": "node", "floor": "selectors"}.get(opts.target, opts.loop),
        "standin": opts.standin if opts.target == "alertwire" else None,
        "subscribers": opts.subscribers,
        "connected": connected,
        "connect_errors": connect_errors[:5],
        "events_requested": opts.events,
        "rate": opts.rate or "saturate",
        "window": opts.window,
        "published": published,
        "delivered": received,
        "expected": published * connected,
        "delivered_per_s": round(received / span) if span else 0,
        "alerts_per_s": round(published / publish_span, 1),
        "seconds": round(span, 3),
        "latency_commit": stats.percentiles(
            stats.merge(r["hist_commit"] for r in results),
            max((r["max_commit"] for r in results), default=None),
        ),
        "latency_publish": stats.percentiles(
            stats.merge(r["hist_publish"] for r in results),
            max((r["max_publish"] for r in results), default=None),
        ),
        "lost": total("lost"),
        "duplicated": total("duplicated"),
        "unexpected": total("unexpected"),
        "misordered": total("misordered"),
        "ids_checked": total("ids_checked"),
        "closed_early": total("closed_early"),
        "server": server,
        "loadgen_loop": results[0]["loop"] if results else None,
        "loadgen_cpu_percent": round(
            100 * sum(r["cpu_s"] for r in results) / max(wall1 - wall0, 1e-9), 1
        ),
        "publisher": {k: v for k, v in publish.items() if k not in ("first_send", "publish_end")},
    }
