"""The practical limit in Python: a bare aiohttp WebSocket broadcast, for bench_fanout --compare.

It speaks just enough JSON-RPC for the load generator: `healthcare.subscribeToAlerts` adds the
socket to its hospital's set and answers `{"subscription":"s1"}`; `healthcare.createAlert`
builds an alert.created event shaped like Alertwire's, encodes the notification frame once and
writes those same bytes to every subscribed socket (`send_frame` one socket after another),
then answers with the alert. No auth, no storage, no queues, no per-subscriber envelope.

    python -m bench.peers.bare_aiohttp [--port 0] [--progress PATH --workers P]

With --progress it also runs the in-process publish loop of --mode service. The first stdout
line is "listening on http://HOST:PORT".
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from collections import defaultdict
from typing import Any

import orjson
from aiohttp import WSMsgType, web

from bench.events import alert_event, notification
from bench.inproc import publish_on_command
from bench.publisher import alert_input

SUBSCRIBERS = web.AppKey("subscribers", defaultdict[str, set[web.WebSocketResponse]])


class Broadcaster:
    def __init__(self) -> None:
        self.subscribers: defaultdict[str, set[web.WebSocketResponse]] = defaultdict(set)
        self.seq = 0

    async def publish(self, params: dict[str, Any]) -> dict[str, Any]:
        self.seq += 1
        event = alert_event(self.seq, params)
        frame = notification(event)
        for ws in list(self.subscribers[params["hospitalId"]]):
            if not ws.closed:
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await ws.send_frame(frame, WSMsgType.TEXT)
        alert: dict[str, Any] = event["alert"]
        return alert


async def handle_ws(request: web.Request) -> web.WebSocketResponse:
    hub: Broadcaster = request.app[HUB]
    ws = web.WebSocketResponse(autoping=True, compress=False)
    await ws.prepare(request)
    hospitals: list[str] = []
    try:
        async for msg in ws:
            if msg.type is not WSMsgType.TEXT:
                continue
            request_msg = orjson.loads(msg.data)
            method, params, rid = (
                request_msg.get("method"),
                request_msg.get("params") or {},
                request_msg.get("id"),
            )
            if method == "healthcare.subscribeToAlerts":
                hub.subscribers[params["hospitalId"]].add(ws)
                hospitals.append(params["hospitalId"])
                result: Any = {"subscription": "s1"}
            elif method == "healthcare.createAlert":
                result = await hub.publish(params)
            else:
                await ws.send_bytes(
                    orjson.dumps({"jsonrpc": "2.0", "id": rid, "error": {"code": -32601, "message": "Method not found"}})
                )
                continue
            await ws.send_str(orjson.dumps({"jsonrpc": "2.0", "result": result, "id": rid}).decode())
    finally:
        for hospital in hospitals:
            hub.subscribers[hospital].discard(ws)
    return ws


HUB = web.AppKey("hub", Broadcaster)


async def main(port: int, progress: str | None, workers: int, hospital: str) -> None:
    app = web.Application()
    hub = Broadcaster()
    app[HUB] = hub
    app.router.add_get("/api/trpc", handle_ws)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port, backlog=4096)
    await site.start()
    bound = port
    if runner.addresses:  # the bound port, for port 0 (any event loop)
        bound = int(runner.addresses[0][1])
    print(f"listening on http://127.0.0.1:{bound}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    publisher = None
    if progress:

        async def publish(seq: int) -> None:
            await hub.publish(alert_input(hospital, seq))

        publisher = asyncio.create_task(publish_on_command(progress, workers, publish))
    await stop.wait()
    if publisher is not None:
        publisher.cancel()
    await runner.cleanup()


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--progress", default=None)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--hospital", default="h-bench")
    parser.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    args = parser.parse_args()
    coro = main(args.port, args.progress, args.workers, args.hospital)
    if args.loop == "uvloop":
        import uvloop

        uvloop.run(coro)
    else:
        asyncio.run(coro)


if __name__ == "__main__":
    cli()
