"""Where an alert's latency goes inside the server: per-stage delays after its scheduled send.

The benchmark's publisher writes each alert's scheduled send time into its title
(bench/publisher.py `alert_input`), so the server can time every stage against it on the same
machine's clock, with nothing added to the production code: `StageRecorder.install` chains onto
hooks the server already has (the dispatcher's `run`, the store's `on_commit` and
`on_commit_seconds`, the subscription service's `on_delivered`, the loop's flusher). Stages:

- `call`: `createAlert` reached the dispatcher (its frame was read and parsed);
- `committed`: its write batch committed (the store's one round trip to the database);
- `handed`: the event was handed to every subscriber's connection (sliced fan-out done);
- `flushed`: every connection it was handed to has had it written to its socket.

`commit_ms` is each write batch's duration on its own. Enabled by BENCH_STAGES=PATH in
bench.server_entry; the summary is written to PATH when the server stops, and
`bench_fanout.py --stages` prints it beside the latency the subscribers measured.
"""

from __future__ import annotations

import json
import re
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from rpc.transport_aiohttp.flush import when_flushed
from server.main import Running
from services.store import StoredEvent

STAGES = ("call", "committed", "handed", "flushed")
_TITLE = re.compile(rb'"title":"bench-\d+-(\d+\.\d+)"')
_PROCEDURE = "healthcare.createAlert"


class StageRecorder:
    def __init__(self) -> None:
        self.delays: dict[str, list[float]] = {stage: [] for stage in STAGES}
        self.commit_s: list[float] = []

    def install(self, running: Running) -> None:
        services = running.services
        dispatcher = running.state.dispatcher
        run = dispatcher.run

        async def timed_run(ctx: Any, proc: Any, raw_input: Any) -> bytes:
            if proc.path == _PROCEDURE and isinstance(raw_input, dict):
                self._stage("call", _scheduled_of_title(raw_input.get("title")))
            return await run(ctx, proc, raw_input)

        dispatcher.run = timed_run  # type: ignore[method-assign]

        on_commit = services.store.on_commit

        def committed(events: Sequence[StoredEvent]) -> None:
            for event in events:  # before on_commit, which publishes (the hand-off runs in it)
                scheduled = _scheduled_of_payload(event.payload)
                if scheduled is not None:
                    self._stage("committed", scheduled)
            on_commit(events)

        services.store.on_commit = committed

        on_seconds = services.store.on_commit_seconds

        def commit_seconds(seconds: float) -> None:
            self.commit_s.append(seconds)
            if on_seconds is not None:
                on_seconds(seconds)

        services.store.on_commit_seconds = commit_seconds

        # Each topic calls its service's `_delivered(event)` once the event is handed to all
        # of its subscribers (a private hook: a topic takes it when it is made, so this must
        # run before the first subscription, as it does here at start-up).
        subscriptions = services.subscriptions
        delivered = subscriptions._delivered

        def handed(event: StoredEvent) -> None:
            delivered(event)
            scheduled = _scheduled_of_payload(event.payload)
            if scheduled is not None:
                self._stage("handed", scheduled)
                when_flushed(lambda: self._stage("flushed", scheduled))

        subscriptions._delivered = handed

    def _stage(self, stage: str, scheduled: float | None) -> None:
        if scheduled is not None:
            self.delays[stage].append((time.time() - scheduled) * 1000)

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for stage, values in self.delays.items():
            out[stage] = _quantiles(values)
        out["commit_ms"] = _quantiles([s * 1000 for s in self.commit_s])
        return out

    def write(self, path: str) -> None:
        Path(path).write_text(json.dumps(self.summary()))


def _quantiles(values: list[float]) -> dict[str, float | int | None]:
    if not values:
        return {"n": 0, "p50": None, "p90": None}
    ordered = sorted(values)
    return {
        "n": len(ordered),
        "p50": round(statistics.median(ordered), 3),
        "p90": round(ordered[int(0.9 * (len(ordered) - 1))], 3),
    }


def _scheduled_of_title(title: Any) -> float | None:
    if not isinstance(title, str) or not title.startswith("bench-"):
        return None
    try:
        return float(title.rsplit("-", 1)[1])
    except ValueError:
        return None


def _scheduled_of_payload(payload: bytes) -> float | None:
    match = _TITLE.search(payload)
    return float(match.group(1)) if match else None


def read(path: Path) -> dict[str, Any] | None:
    try:
        summary: dict[str, Any] = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    return summary


def table(summary: dict[str, Any]) -> str:
    """The stages as printed lines: median and p90 ms after the scheduled send."""
    lines = ["stage (ms after the scheduled send)   p50      p90      n"]
    for stage in (*STAGES, "commit_ms"):
        row = summary.get(stage) or {}
        label = "write batch duration" if stage == "commit_ms" else stage
        lines.append(f"  {label:<36}{_fmt(row.get('p50'))}{_fmt(row.get('p90'))}{row.get('n', 0)}")
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    return f"{value:<9.3f}" if isinstance(value, int | float) else f"{'-':<9}"
