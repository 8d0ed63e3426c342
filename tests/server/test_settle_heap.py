"""server.main.settle_heap: what is alive once the server is up leaves the cyclic collector,
so a full collection's pause depends on what the connections made since, not on the code."""

from __future__ import annotations

import gc
import sys
from collections.abc import Iterator

import pytest

from server.main import GIL_SWITCH_INTERVAL_S, settle_heap


@pytest.fixture
def thawed() -> Iterator[None]:
    interval = sys.getswitchinterval()
    yield
    gc.unfreeze()  # this test process goes on collecting what its other tests free
    sys.setswitchinterval(interval)


def test_everything_alive_is_frozen_and_garbage_made_later_is_still_collected(
    thawed: None,
) -> None:
    settle_heap()
    assert sys.getswitchinterval() == GIL_SWITCH_INTERVAL_S
    assert gc.get_freeze_count() > 0
    assert len(gc.get_objects()) < 1000  # only what was made since (the collector's view)

    class Node:
        def __init__(self) -> None:
            self.other: Node | None = None

    a, b = Node(), Node()
    a.other, b.other = b, a  # a cycle made after the freeze
    del a, b
    assert gc.collect() >= 2
