"""The sliced flush (rpc.transport_aiohttp.flush): an event's fan-out yields to the loop between
slices, so a call in flight is answered before the fan-out ends; each connection still gets
its frames in order and exactly once."""

from __future__ import annotations

import asyncio
import itertools

import pytest
from aiohttp import WSMsgType

from rpc.limits import Limits
from rpc.transport_aiohttp import flush
from rpc.transport_aiohttp.flush import Flusher
from tests.conftest import make_token
from tests.rpc.arena import arena, overflow_send_queue
from tests.rpc.wire import call, eventually, recv, send_json


class FakeOut:
    """A connection's outbound side as the flusher sees it: frames wait until flushed."""

    def __init__(self, name: int, written: list[tuple[int, list[int]]]) -> None:
        self.name = name
        self.pending: list[int] = []
        self.marked = False
        self._written = written

    def send(self, flusher: Flusher, frame: int) -> None:
        self.pending.append(frame)
        if not self.marked:
            self.marked = True
            flusher.mark(self)

    def flush(self) -> None:
        self.marked = False
        self._written.append((self.name, self.pending))
        self.pending = []


def ticking_clock(step: float) -> itertools.count[float]:
    return itertools.count(0.0, step)


async def test_a_call_in_flight_is_answered_between_slices() -> None:
    """The clock moves a millisecond per look and a slice is 2 ms: about 32 connections per
    slice. A reply that lands meanwhile (as the store's does, from its thread) resumes its
    caller before the 1,000 connections are all written."""
    loop = asyncio.get_running_loop()
    ticks = ticking_clock(0.001)
    flusher = Flusher(loop, clock=lambda: next(ticks), slice_s=0.002)
    written: list[tuple[int, list[int]]] = []
    outs = [FakeOut(n, written) for n in range(1000)]
    reply: asyncio.Future[None] = loop.create_future()

    async def caller() -> int:
        await reply
        return len(written)  # connections written when the call went on

    task = asyncio.create_task(caller())
    await asyncio.sleep(0)  # the caller waits for its reply
    for out in outs:
        out.send(flusher, 1)
    loop.call_soon(reply.set_result, None)
    written_when_answered = await task
    assert 0 < written_when_answered < len(outs)
    await eventually(lambda: len(written) == len(outs), "every connection to be written")
    assert sorted(name for name, _ in written) == list(range(1000))


async def test_frames_sent_between_slices_join_their_connection_in_order() -> None:
    loop = asyncio.get_running_loop()
    ticks = ticking_clock(0.001)
    flusher = Flusher(loop, clock=lambda: next(ticks), slice_s=0.001)
    written: list[tuple[int, list[int]]] = []
    outs = [FakeOut(n, written) for n in range(200)]
    for frame in range(1, 6):  # a burst of five events, sent while earlier slices run
        for out in outs:
            out.send(flusher, frame)
        await asyncio.sleep(0)
    await eventually(lambda: not any(out.marked for out in outs), "the flush to finish")
    received: dict[int, list[int]] = {}
    for name, frames in written:
        received.setdefault(name, []).extend(frames)
    assert received == {n: [1, 2, 3, 4, 5] for n in range(200)}


@pytest.fixture
def tiny_slices(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every flush slice ends at its first look at the clock: the most interleaving there is."""
    monkeypatch.setattr(flush, "FLUSH_SLICE_S", 0.0)
    monkeypatch.setattr(flush, "_flushers", type(flush._flushers)())


@pytest.mark.usefixtures("tiny_slices")
async def test_a_burst_reaches_every_socket_once_and_in_order() -> None:
    async with arena(Limits(rate_per_10s=0)) as a:
        sockets = [await a.connect(make_token(sub=f"viewer-{n}")) for n in range(40)]
        for ws in sockets:
            await send_json(
                ws,
                {"jsonrpc": "2.0", "id": 1, "method": "demo.feed", "params": {"hospitalId": "h1"}},
            )
            assert "subscription" in (await recv(ws))["result"]
        caller = await a.connect(make_token(sub="caller"))
        sent = [a.feed.publish("h1") for _ in range(30)]
        whoami = await call(caller, "system.whoami")
        assert whoami["result"]["sub"] == "caller"
        for ws in sockets:
            ids = [(await recv(ws))["params"]["id"] for _ in sent]
            assert ids == sent


@pytest.mark.usefixtures("tiny_slices")
async def test_a_slow_consumer_is_still_closed_by_its_queue_limit() -> None:
    async with arena(Limits(send_queue_frames=8)) as a:
        ws = await overflow_send_queue(a)
        while (msg := await ws.receive(timeout=5)).type is WSMsgType.TEXT:
            pass  # what was written before the overflow, then the close
        assert (msg.type, msg.data) == (WSMsgType.CLOSE, 4008)


async def test_when_flushed_waits_for_the_connections_marked_before_it_and_only_those() -> None:
    """A slice ends every 16 connections here: the callback runs once the 40 connections
    marked before it are written, in the slice that wrote the last of them, before the 40
    marked after it are all written (it measures an event's own writes, not later ones)."""
    loop = asyncio.get_running_loop()
    ticks = ticking_clock(0.001)
    flusher = Flusher(loop, clock=lambda: next(ticks), slice_s=0.001)
    written: list[tuple[int, list[int]]] = []
    outs = [FakeOut(n, written) for n in range(80)]
    seen: list[int] = []
    flusher.when_flushed(lambda: seen.append(-1))  # nothing waits: at once
    assert seen == [-1]
    for out in outs[:40]:
        out.send(flusher, 1)
    outs[0].send(flusher, 2)  # already marked: joins its pending frames, no new mark
    flusher.when_flushed(lambda: seen.append(len(written)))
    for out in outs[40:]:
        out.send(flusher, 1)
    flusher.when_flushed(lambda: seen.append(len(written)))
    await eventually(lambda: len(seen) == 3, "both callbacks")
    assert seen[1] == 48  # the third slice wrote the 40th
    assert seen[2] == 80
    assert written[0] == (0, [1, 2])
