"""How long one hostile message holds the event loop before it is refused, before and after
the byte scanner (rpc.jsoncost), for scripts/bench_hostile.py.

Before: the message was parsed (orjson) and its tree walked for the depth check
(`json_depth_ok`, rpc/limits.py before the scanner; reproduced here as it was), and an
anonymous client could send as much as anyone (1 MiB). After: `rpc.jsoncost.measure` refuses
it from its bytes; an anonymous client's message is at most 16 KiB (anything larger is refused
by its length, before a byte of it is looked at).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import orjson

from bench.hostile_attacks import nested, repeated, strings
from rpc.jsoncost import refusal

MIB = 1_048_576
ANONYMOUS = 16_384
MAX_DEPTH = 32
MAX_VALUES = 10_000


def json_depth_ok(value: object, max_depth: int) -> bool:
    """The depth check before the scanner (iterative: no recursion limit)."""
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            if depth > max_depth:
                return False
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            if depth > max_depth:
                return False
            stack.extend((v, depth + 1) for v in item)
    return True


def before(document: bytes) -> None:
    try:
        value = orjson.loads(document)
    except orjson.JSONDecodeError:  # orjson refuses nesting past 1024 itself
        return
    json_depth_ok(value, MAX_DEPTH)


def after(document: bytes) -> None:
    if refusal(document, MAX_DEPTH, MAX_VALUES) is None:
        orjson.loads(document)


def timed_ms(work: Callable[[bytes], None], document: bytes, repeat: int) -> dict[str, float]:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        work(document)
        samples.append((time.perf_counter() - started) * 1000)
    return {"median_ms": round(statistics.median(samples), 3), "max_ms": round(max(samples), 3)}


SHAPES: dict[str, Callable[[int], bytes]] = {
    "repeated empty lists": repeated,
    "nested lists": nested,
    "strings": strings,
}


def loop_costs(repeat: int = 15) -> list[dict[str, Any]]:
    rows = []
    for shape, make in SHAPES.items():
        big, small = make(MIB), make(ANONYMOUS)
        rows.append(
            {
                "shape": shape,
                # Before, a token made no difference: anyone could send 1 MiB.
                "before_1mib_ms": timed_ms(before, big, repeat),
                "after_authenticated_1mib_ms": timed_ms(after, big, repeat),
                "after_anonymous_16kib_ms": timed_ms(after, small, repeat),
                "before_16kib_ms": timed_ms(before, small, repeat),
            }
        )
    return rows
