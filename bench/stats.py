"""Latency histograms (0.1 ms buckets, as the load generator keeps them) and their summaries."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from bench.loadgen import BUCKETS_PER_S


def merge(parts: Iterable[Mapping[int, int]]) -> dict[int, int]:
    total: dict[int, int] = {}
    for part in parts:
        for bucket, count in part.items():
            total[bucket] = total.get(bucket, 0) + count
    return total


def percentiles(hist: Mapping[int, int], worst_s: float | None = None) -> dict[str, float | int]:
    """p50/p90/p99/p99.9 in ms (upper bucket edge, so never flattering) and max."""
    count = sum(hist.values())
    out: dict[str, float | int] = {"samples": count}
    if not count:
        return out
    wanted = {"p50_ms": 0.5, "p90_ms": 0.9, "p99_ms": 0.99, "p999_ms": 0.999}
    seen = 0
    keys = iter(sorted(wanted.items(), key=lambda item: item[1]))
    name, q = next(keys)
    done = False
    for bucket in sorted(hist):
        seen += hist[bucket]
        while not done and seen >= q * count:
            out[name] = round((bucket + 1) * 1000 / BUCKETS_PER_S, 2)
            try:
                name, q = next(keys)
            except StopIteration:
                done = True
        if done:
            break
    top = max(hist)
    out["max_ms"] = round(
        worst_s * 1000 if worst_s is not None else (top + 1) * 1000 / BUCKETS_PER_S, 2
    )
    return out
