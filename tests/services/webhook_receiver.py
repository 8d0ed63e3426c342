"""A webhook receiver on 127.0.0.1 for the outbound tests: keeps every request it gets, and
answers with the statuses it is told to (200 once they run out), or not at all (`hang`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiohttp import web


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    url: str = ""
    requests: list[Received] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)  # answered in turn, then 200
    hang: bool = False  # never answer (the sender's timeout ends it)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(Received(dict(request.headers), await request.read()))
        self.arrived.set()
        if self.hang:
            await asyncio.Event().wait()
        status = self.statuses.pop(0) if self.statuses else 200
        if 300 <= status < 400:
            raise web.HTTPFound(location="http://127.0.0.1:1/elsewhere")
        return web.Response(status=status, text="ok")


@asynccontextmanager
async def receiver(path: str = "/hook") -> AsyncIterator[Receiver]:
    got = Receiver()
    app = web.Application()
    app.router.add_post(path, got.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    got.url = f"http://127.0.0.1:{port}{path}"
    try:
        yield got
    finally:
        await runner.cleanup()
