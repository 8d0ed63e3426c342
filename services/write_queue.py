"""The write queue both stores share: concurrent `transact` calls wait in one queue and are
taken in batches of up to MAX_BATCH, one batch (one commit) at a time."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

from rpc.errors import ErrorCode, RpcError

MAX_BATCH = 256


class Waiting(Protocol):
    @property
    def future(self) -> asyncio.Future[Any]: ...


W = TypeVar("W", bound=Waiting)


def shut_out(pending: Waiting) -> None:
    """A caller whose write will not run: an error to report, not a cancellation."""
    if not pending.future.done():
        pending.future.set_exception(
            RpcError(ErrorCode.SERVICE_UNAVAILABLE, "The server is shutting down")
        )


async def write_in_batches(
    queue: asyncio.Queue[W], run_batch: Callable[[list[W]], Awaitable[None]]
) -> None:
    """Forever: wait for a write, take what else is waiting, run them as one batch. Cancelled
    mid-batch, the batch's callers are shut out."""
    while True:
        batch = [await queue.get()]
        while len(batch) < MAX_BATCH and not queue.empty():
            batch.append(queue.get_nowait())
        try:
            await run_batch(batch)
        except asyncio.CancelledError:
            for pending in batch:
                shut_out(pending)
            raise
