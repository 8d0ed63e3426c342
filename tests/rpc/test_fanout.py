"""SlicedFanout: events reach every subscriber once and in order, in slices that let the loop
run other work between them."""

from __future__ import annotations

import asyncio
import itertools

from rpc.fanout import SlicedFanout
from tests.rpc.wire import eventually


def slow_clock() -> itertools.count[float]:
    """A millisecond per look: with a 2 ms slice, a slice is a few dozen deliveries."""
    return itertools.count(0.0, 0.001)


def fanout(
    audience: list[int], got: dict[int, list[str]], slice_s: float = 0.002
) -> SlicedFanout[str, int]:
    ticks = slow_clock()
    return SlicedFanout(
        lambda _event: tuple(audience),
        lambda sub, event: got.setdefault(sub, []).append(event),
        clock=lambda: next(ticks),
        slice_s=slice_s,
    )


async def test_every_subscriber_gets_every_event_once_and_in_order() -> None:
    audience = list(range(500))
    got: dict[int, list[str]] = {}
    f = fanout(audience, got)
    for n in range(5):
        f.publish(f"e{n}")
    await eventually(lambda: f.pending == 0, "the fan-out to finish")
    assert got == {sub: ["e0", "e1", "e2", "e3", "e4"] for sub in audience}


async def test_other_work_runs_between_slices() -> None:
    audience = list(range(1000))
    got: dict[int, list[str]] = {}
    f = fanout(audience, got)
    seen: list[int] = []
    f.publish("e0")
    asyncio.get_running_loop().call_soon(lambda: seen.append(len(got)))
    await eventually(lambda: f.pending == 0, "the fan-out to finish")
    assert len(seen) == 1
    assert 0 < seen[0] < len(audience)  # ran in the middle of the event's fan-out
    assert len(got) == len(audience)


async def test_a_subscriber_that_joins_mid_delivery_is_live_from_the_next_event() -> None:
    audience = list(range(300))
    got: dict[int, list[str]] = {}
    f = fanout(audience, got)
    f.publish("e0")
    f.publish("e1")  # waits for e0 to reach all of its audience
    audience.append(999)  # joins while e0 is under way
    await eventually(lambda: f.pending == 0, "the fan-out to finish")
    assert got[999] == ["e1"]
    assert all(got[sub] == ["e0", "e1"] for sub in range(300))


async def test_publishing_from_a_delivery_queues_behind_it() -> None:
    got: dict[int, list[str]] = {}
    f: SlicedFanout[str, int]

    def deliver(sub: int, event: str) -> None:
        got.setdefault(sub, []).append(event)
        if event == "e0" and sub == 0:
            f.publish("e1")

    f = SlicedFanout(lambda _e: (0, 1, 2), deliver)
    f.publish("e0")
    assert got == {0: ["e0", "e1"], 1: ["e0", "e1"], 2: ["e0", "e1"]}


def test_without_a_running_loop_it_delivers_in_one_piece() -> None:
    audience = list(range(1000))
    got: dict[int, list[str]] = {}
    f = fanout(audience, got, slice_s=0.0)
    f.publish("e0")
    f.publish("e1")
    assert f.pending == 0
    assert got == {sub: ["e0", "e1"] for sub in audience}


async def test_done_hears_each_event_once_after_its_whole_audience_and_never_for_none() -> None:
    audience = list(range(300))
    got: dict[int, list[str]] = {}
    done: list[tuple[str, int]] = []
    ticks = slow_clock()
    f: SlicedFanout[str, int] = SlicedFanout(
        lambda event: tuple(audience) if event != "nobody" else (),
        lambda sub, event: got.setdefault(sub, []).append(event),
        clock=lambda: next(ticks),
        done=lambda event: done.append((event, sum(event in g for g in got.values()))),
    )
    for event in ("e0", "nobody", "e1"):
        f.publish(event)
    await eventually(lambda: f.pending == 0, "the fan-out to finish")
    assert done == [("e0", 300), ("e1", 300)]
