"""What observing costs, in process, without sockets: per call (the procedure counter and
histogram around Dispatcher.run), per delivered event (a flush waiter and one histogram
observation) and per commit. The same call with observation off and on, interleaved, best of
seven rounds. The end-to-end comparison is `scripts/bench_fanout.py --metrics-rounds N`.

    python scripts/bench_metrics_cost.py
"""

from __future__ import annotations

import asyncio
import functools
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from routers.app import app_router
from rpc.dispatch import Dispatcher
from rpc.metrics import Metrics
from rpc.transport_aiohttp.flush import when_flushed

CALLS = 50_000
ROUNDS = 7


async def main() -> None:
    dispatcher = Dispatcher(app_router, None)
    metrics = Metrics()
    metrics.declare_procedures((p.path for p in app_router), ())
    proc = dispatcher.lookup("system.ping")
    ctx = dispatcher.new_context(principal=None, connection_id="bench")
    best = {"off": float("inf"), "on": float("inf")}
    for _ in range(ROUNDS):
        for mode in ("off", "on"):
            dispatcher.calls = metrics.calls if mode == "on" else None
            start = time.perf_counter()
            for _ in range(CALLS):
                await dispatcher.run(ctx, proc, None)
            best[mode] = min(best[mode], (time.perf_counter() - start) / CALLS * 1e6)
    print(
        f"system.ping through Dispatcher.run: off {best['off']:.2f} us, on {best['on']:.2f} us: "
        f"{best['on'] - best['off']:.2f} us per call"
    )
    start = time.perf_counter()
    for _ in range(CALLS):
        when_flushed(functools.partial(metrics.delivered, time.perf_counter()))
    print(f"delivery delay: {(time.perf_counter() - start) / CALLS * 1e6:.2f} us per event")
    start = time.perf_counter()
    for _ in range(CALLS):
        metrics.commit_seconds.observe(0.001)
    print(f"commit duration: {(time.perf_counter() - start) / CALLS * 1e6:.2f} us per batch")


if __name__ == "__main__":
    asyncio.run(main())
