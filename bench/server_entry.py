"""Alertwire for the benchmark: the server exactly as `server.main.start` composes it, run on a
chosen event loop, with an optional in-process publish loop (--mode service).

    python -m bench.server_entry [--loop asyncio|uvloop] [--standin]
                                 [--progress PATH --workers P --hospital H]
                                 [--sse-stall-seconds S]

Environment as for scripts/start_websocket_server.py; with BENCH_TRACEMALLOC=PATH the process
traces its allocations and, on SIGUSR1, writes where its live memory was allocated to PATH
(bench_connections --trace-memory); with BENCH_STAGES=PATH it times each alert's stages inside
the server and writes them to PATH when it stops (bench/stages.py, bench_fanout --stages).
The first stdout line is the start script's banner ("... listening on http://HOST:PORT ...").
--standin replaces the healthcare router with bench/standin.py (RPC core only, no storage).

--mode service publishes through the domain's service, skipping the RPC edge: the alert is
created and committed by the service as the mutation would, so the figure separates the cost of
the RPC call path from the cost of commit plus fan-out.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import tracemalloc
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path

from bench import standin
from bench.inproc import publish_on_command
from bench.publisher import alert_input
from bench.stages import StageRecorder
from routers import system
from rpc.connections import ConnectionRegistry
from rpc.dispatch import Dispatcher
from rpc.router import Router
from rpc.transport_aiohttp import ServerState, create_app
from schemas.alerts import CreateAlertInput
from server import config as server_config
from server import logs
from server import main as server_main
from services.container import Services

Publish = Callable[[int], Awaitable[None]]


async def start_standin(config: server_config.ServerConfig) -> tuple[server_main.Running, Publish]:
    """As server.main.start, with the stand-in healthcare router and its in-memory hub."""
    hub = standin.Hub()
    router = Router.merge(system=system.router, healthcare=standin.router)
    state = ServerState(
        dispatcher=Dispatcher(router, hub),
        auth=config.auth,
        limits=config.limits,
        registry=ConnectionRegistry(),
        origins=config.origins,
    )
    running = await server_main.listen(create_app(state), state, hub, config)

    async def publish(seq: int) -> None:
        hub.publish(alert_input(HOSPITAL[0], seq))

    return running, publish


HOSPITAL = ["h-bench"]


def domain_publisher(running: server_main.Running, hospital: str) -> Publish:
    """Create and commit an alert through the domain service, as the mutation does, without
    the RPC call path (no frame parsing, dispatch, validation of the request or reply)."""
    services: Services = running.services

    async def publish(seq: int) -> None:
        data = CreateAlertInput.model_validate(alert_input(hospital, seq))
        await services.alerts.create(data, "bench-publisher")

    return publish


async def serve(args: argparse.Namespace) -> None:
    config = server_config.load()
    if args.sse_stall_seconds is not None:  # no environment variable: a benchmark's knob
        limits = replace(config.limits, sse_stall_timeout_s=args.sse_stall_seconds)
        config = replace(config, limits=limits)
    HOSPITAL[0] = args.hospital
    if args.standin:
        running, publish = await start_standin(config)
    else:
        running = await server_main.start(config)
        publish = domain_publisher(running, args.hospital) if args.progress else _none
    stages_path = os.environ.get("BENCH_STAGES")
    recorder = None
    if stages_path and not args.standin:
        recorder = StageRecorder()
        recorder.install(running)
    server_main.settle_heap()  # as server.main.run does
    print(server_main.describe(config, running.port), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    trace_path = os.environ.get("BENCH_TRACEMALLOC")
    if trace_path:
        loop.add_signal_handler(signal.SIGUSR1, write_allocations, trace_path)
    task = None
    if args.progress:
        task = asyncio.create_task(publish_on_command(args.progress, args.workers, publish))
    await stop.wait()
    if task is not None:
        task.cancel()
    await server_main.stop(running)
    if recorder is not None and stages_path:
        recorder.write(stages_path)


def write_allocations(path: str, top: int = 40) -> None:
    """The allocation sites holding the most live memory now, one per line (size, count, the
    innermost frames), written to `path` and then renamed into place."""
    snapshot = tracemalloc.take_snapshot().filter_traces(
        [tracemalloc.Filter(False, tracemalloc.__file__)]
    )
    stats = snapshot.statistics("traceback")
    total = sum(stat.size for stat in stats)
    lines = [f"total {total} bytes in {sum(stat.count for stat in stats)} blocks"]
    for stat in stats[:top]:
        frames = " <- ".join(
            f"{Path(frame.filename).name}:{frame.lineno}" for frame in reversed(stat.traceback)
        )
        lines.append(f"{stat.size} {stat.count} {frames}")
    Path(path + ".tmp").write_text("\n".join(lines) + "\n")
    os.replace(path + ".tmp", path)


async def _none(seq: int) -> None:
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    parser.add_argument("--standin", action="store_true")
    parser.add_argument("--progress", default=None)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--hospital", default="h-bench")
    parser.add_argument("--sse-stall-seconds", type=float, default=None)
    args = parser.parse_args()
    logs.setup(os.environ.get("LOG_LEVEL", "WARNING"))
    if os.environ.get("BENCH_TRACEMALLOC"):
        tracemalloc.start(6)
    if args.loop == "uvloop":
        import uvloop

        uvloop.run(serve(args))
    else:
        asyncio.run(serve(args))


if __name__ == "__main__":
    main()
