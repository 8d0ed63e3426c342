"""`outbound.Flag`, the connection's wake-up and finished flags: Event's behaviour without its
per-instance deque, and one waiter's cancellation never cancelling the others' wait."""

from __future__ import annotations

import asyncio

import pytest

from rpc.transport_aiohttp.outbound import Flag


async def test_wait_returns_at_once_when_set_and_waits_after_clear() -> None:
    flag = Flag()
    flag.set()
    assert flag.is_set()
    await asyncio.wait_for(flag.wait(), 1)
    flag.clear()
    assert not flag.is_set()
    waiter = asyncio.ensure_future(flag.wait())
    await asyncio.sleep(0)
    assert not waiter.done()
    flag.set()
    await asyncio.wait_for(waiter, 1)


async def test_set_wakes_every_waiter() -> None:
    flag = Flag()
    waiters = [asyncio.ensure_future(flag.wait()) for _ in range(3)]
    await asyncio.sleep(0)
    flag.set()
    await asyncio.wait_for(asyncio.gather(*waiters), 1)


async def test_a_cancelled_waiter_leaves_the_others_waiting() -> None:
    flag = Flag()
    impatient = asyncio.ensure_future(flag.wait())
    patient = asyncio.ensure_future(flag.wait())
    await asyncio.sleep(0)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(impatient, 0.01)
    assert not patient.done()
    flag.set()
    await asyncio.wait_for(patient, 1)


async def test_waiting_again_after_a_wake_needs_a_new_set() -> None:
    flag = Flag()
    first = asyncio.ensure_future(flag.wait())
    await asyncio.sleep(0)
    flag.set()
    await first
    flag.clear()
    second = asyncio.ensure_future(flag.wait())
    await asyncio.sleep(0)
    assert not second.done()
    flag.set()
    await asyncio.wait_for(second, 1)
