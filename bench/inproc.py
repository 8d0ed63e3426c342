"""A publish loop that runs inside a server process (--mode service), driven by the shared
progress block: it waits for the start command, then publishes as the pacer allows and
counts what it published. `publish(seq)` must commit/fan out one alert numbered `seq`."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from bench.progress import (
    CMD_START,
    COMMAND,
    DONE,
    ERRORS,
    EVENTS,
    PUBLISHED,
    RATE_MILLI,
    WINDOW,
    Pacer,
    Progress,
)

log = logging.getLogger("alertwire.bench")


async def publish_on_command(
    progress_path: str,
    workers: int,
    publish: Callable[[int], Awaitable[None]],
    stall_s: float = 10.0,
) -> None:
    progress = Progress.attach(progress_path, workers)
    slots = progress.slots
    try:
        while slots[COMMAND] != CMD_START:  # noqa: ASYNC110 - another process sets it
            await asyncio.sleep(0.002)
        events = slots[EVENTS]
        pacer = Pacer(progress, slots[RATE_MILLI] / 1000, slots[WINDOW], stall_s)
        published = 0
        while published < events:
            wait = pacer.delay(published)
            if wait > 0:
                if pacer.stalled():
                    slots[ERRORS] += 1
                    break
                await asyncio.sleep(wait)
                continue
            try:
                await publish(published)
            except Exception:
                log.exception("bench publish failed")
                slots[ERRORS] += 1
                break
            published += 1
            slots[PUBLISHED] = published
            # Fan-out only enqueues; the writers run when this loop yields.
            await asyncio.sleep(0)
        slots[DONE] = 1
    finally:
        progress.close()
