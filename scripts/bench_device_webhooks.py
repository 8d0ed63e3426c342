"""Outbound device events benchmark (`device.*` webhooks).

    python scripts/bench_device_webhooks.py                      # 5,000 changes, 4 endpoints
    python scripts/bench_device_webhooks.py --changes 20000 --endpoints 8 --concurrency 64

In one process, on a fresh SQLite database (each commit on disk): `--concurrency` callers
report `--changes` device status changes (`devices.reportStatus`'s service call, each one a
change, so each appends a device event in its write), then the delivery loop POSTs them to
`--endpoints` endpoints asking for `device.*` on a receiver on 127.0.0.1. Prints the status
writes/s (with their event appended) and the deliveries/s over all endpoints, and checks that
every endpoint got every event once, in order.

Writes bench/results/device-webhooks.json.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.output import save  # noqa: E402
from rpc.connections import ConnectionRegistry  # noqa: E402
from rpc.transport_aiohttp.webhook_client import WebhookClient  # noqa: E402
from schemas.devices import ReportDeviceStatusInput  # noqa: E402
from services.config import DomainConfig  # noqa: E402
from services.container import Services  # noqa: E402

STATES = ("online", "low_battery")


class Receiver:
    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.got: dict[str, list[str]] = {}
        self.done = asyncio.Event()
        self.count = 0

    async def handle(self, request: web.Request) -> web.Response:
        body = orjson.loads(await request.read())
        self.got.setdefault(request.match_info["hook"], []).append(body["id"])
        self.count += 1
        if self.count >= self.expected:
            self.done.set()
        return web.Response(text="ok")


async def run(args: argparse.Namespace) -> dict[str, Any]:
    receiver = Receiver(args.changes * args.endpoints)
    app = web.Application()
    app.router.add_post("/hook/{hook}", receiver.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    with tempfile.TemporaryDirectory() as data:
        config = DomainConfig(database_path=f"{data}/bench.db", webhook_allow_private=True)
        services = await Services.open(config, ConnectionRegistry(), background=False)
        try:
            for n in range(args.endpoints):
                url = f"http://127.0.0.1:{port}/hook/e{n}"
                await services.webhooks.create("h1", url, ["device.*"], None)
            numbers = iter(range(args.changes))

            async def caller() -> None:
                for i in numbers:
                    device = f"mon-{i % args.devices}"
                    state = STATES[(i // args.devices) % 2]
                    data_in = ReportDeviceStatusInput.model_validate(
                        {"hospitalId": "h1", "deviceId": device, "status": state}
                    )
                    await services.vitals.report_status(data_in, "bench")

            started = time.perf_counter()
            await asyncio.gather(*(caller() for _ in range(args.concurrency)))
            written = time.perf_counter() - started
            newest = await services.vitals.store.newest_device_event("h1")
            assert newest == args.changes, (newest, args.changes)
            started = time.perf_counter()
            await services.start_webhooks(WebhookClient(allow_private=True, timeout_s=10.0))
            services.deliveries.heard_devices("h1")
            await asyncio.wait_for(receiver.done.wait(), args.timeout)
            delivered = time.perf_counter() - started
        finally:
            await services.close()
    await runner.cleanup()
    assert len(receiver.got) == args.endpoints
    for ids in receiver.got.values():
        assert ids == sorted(ids)  # in order (fixed-width ids)
        assert len(ids) == len(set(ids)) == args.changes  # each once
    return {
        "changes": args.changes,
        "endpoints": args.endpoints,
        "concurrency": args.concurrency,
        "status_writes_per_s": round(args.changes / written),
        "deliveries_per_s": round(args.changes * args.endpoints / delivered),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--changes", type=int, default=5_000)
    parser.add_argument("--devices", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--endpoints", type=int, default=4)
    parser.add_argument("--timeout", type=float, default=300.0)
    result = asyncio.run(run(parser.parse_args()))
    print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
    save("device-webhooks", result)


if __name__ == "__main__":
    main()
