"""The load generator: one process holding many subscriber connections.

Every benchmarked alert carries a title `bench-<seq>-<publish time>`; a subscriber finds each
event's seq, publish time, `occurredAt` (commit time) and event id with one compiled-pattern
scan over all the complete frames of a read, never decoding JSON on the hot path. Per
subscriber it keeps a bitmap of seqs (loss and duplication) and the last event id (ids must
increase); per process, latency histograms with 0.1 ms buckets.

Dialects: `jsonrpc` (Alertwire's JSON-RPC 2.0 subscriptions and the bare peer) and `trpc`
(Alertwire's tRPC dialect and the official tRPC server).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import resource
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import datetime
from multiprocessing.connection import Connection
from typing import Any

import orjson

from bench.progress import Progress
from bench.wsclient import WsClientProtocol, iter_frames, split_url

BUCKETS_PER_S = 10_000  # 0.1 ms
HIST_SIZE = 30 * BUCKETS_PER_S  # up to 30 s; the last bucket holds everything beyond
SEQ_RE = re.compile(rb'"title":"bench-(\d+)-(\d+\.\d+)"')
OCCURRED_RE = re.compile(rb'"occurredAt":"([^"]+)"')
EVENT_ID_RE = {
    "jsonrpc": re.compile(rb'"subscription":"[^"]*","id":"([^"]*)"'),
    "trpc": re.compile(rb'"type":"data","id":"([^"]*)"'),
}
PROGRESS_EVERY_S = 0.005


def subscribe_frame(dialect: str, procedure: str, hospital: str) -> bytes:
    if dialect == "jsonrpc":
        return orjson.dumps(
            {"jsonrpc": "2.0", "id": 1, "method": procedure, "params": {"hospitalId": hospital}}
        )
    return orjson.dumps(
        {
            "id": 1,
            "method": "subscription",
            "params": {"path": procedure, "input": {"hospitalId": hospital}},
        }
    )


def subscribed(dialect: str, reply: Any) -> bool | None:
    """True: the subscription is live; False: refused; None: not the reply."""
    if not isinstance(reply, dict) or reply.get("id") != 1:
        return None
    if "error" in reply:
        return False
    result = reply.get("result")
    if dialect == "jsonrpc":
        return isinstance(result, dict) and "subscription" in result
    return isinstance(result, dict) and result.get("type") == "started"


def parse_iso(value: bytes) -> float:
    return datetime.fromisoformat(value.decode()).timestamp()


@dataclass
class Shared:
    """Per-process state every subscriber of the process writes to."""

    events: int
    id_re: re.Pattern[bytes]
    hist_publish: list[int] = field(default_factory=lambda: [0] * HIST_SIZE)
    hist_commit: list[int] = field(default_factory=lambda: [0] * HIST_SIZE)
    occurred: dict[bytes, float] = field(default_factory=dict)
    first: float = 0.0
    last: float = 0.0
    max_publish: float = 0.0
    max_commit: float = 0.0


class Subscriber(WsClientProtocol):
    def __init__(
        self,
        shared: Shared,
        dialect: str,
        target: tuple[str, int, str],
        headers: dict[str, str],
        frame: bytes,
    ) -> None:
        super().__init__(*target, headers)
        self.shared = shared
        self.dialect = dialect
        self.frame = frame
        self.live = False
        self.subscribed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.seen = bytearray(shared.events)
        self.received = 0
        self.duplicates = 0
        self.unexpected = 0
        self.misordered = 0
        self.ids_checked = 0
        self.last_id = (0, b"")

    def opened(self) -> None:
        self.send_text(self.frame)

    def closed(self) -> None:
        if not self.subscribed.done():
            self.subscribed.set_exception(ConnectionError(f"closed ({self.close_code})"))

    def frames_received(self, view: bytes | bytearray, end: int) -> None:
        if not self.live:
            for opcode, payload in iter_frames(view, end):
                if opcode != 1 or self.live or payload == b"PING":
                    continue
                with contextlib.suppress(orjson.JSONDecodeError):
                    verdict = subscribed(self.dialect, orjson.loads(payload))
                    if verdict is True:
                        self.live = True
                        self.subscribed.set_result(None)
                    elif verdict is False and not self.subscribed.done():
                        self.subscribed.set_exception(RuntimeError(payload.decode()[:300]))
            if not self.live:
                return
        self._scan(view, end)

    def _scan(self, view: bytes | bytearray, end: int) -> None:
        hits = SEQ_RE.findall(view, 0, end)
        if not hits:
            return
        now = time.time()
        shared = self.shared
        if not shared.first:
            shared.first = now
        shared.last = now
        seen = self.seen
        size = len(seen)
        hist = shared.hist_publish
        top = HIST_SIZE - 1
        worst = shared.max_publish
        for seq_text, published in hits:
            seq = int(seq_text)
            if seq >= size:
                self.unexpected += 1
                continue
            if seen[seq]:
                self.duplicates += 1
                continue
            seen[seq] = 1
            self.received += 1
            latency = now - float(published)
            if latency > worst:
                worst = latency
            bucket = int(latency * BUCKETS_PER_S)
            hist[bucket if 0 <= bucket < top else (top if bucket > 0 else 0)] += 1
        shared.max_publish = worst
        self._commit_latency(view, end, now)
        self._check_ids(view, end)

    def _commit_latency(self, view: bytes | bytearray, end: int, now: float) -> None:
        shared = self.shared
        cache = shared.occurred
        hist = shared.hist_commit
        top = HIST_SIZE - 1
        worst = shared.max_commit
        for stamp in OCCURRED_RE.findall(view, 0, end):
            at = cache.get(stamp)
            if at is None:
                at = cache[stamp] = parse_iso(stamp)
            latency = now - at
            if latency > worst:
                worst = latency
            bucket = int(latency * BUCKETS_PER_S)
            hist[bucket if 0 <= bucket < top else (top if bucket > 0 else 0)] += 1
        shared.max_commit = worst

    def _check_ids(self, view: bytes | bytearray, end: int) -> None:
        last = self.last_id
        for event_id in self.shared.id_re.findall(view, 0, end):
            key = (len(event_id), event_id)
            if key <= last:
                self.misordered += 1
            last = key
            self.ids_checked += 1
        self.last_id = last


@dataclass(frozen=True)
class WorkerSpec:
    index: int
    url: str
    dialect: str
    procedure: str
    hospital: str
    tokens: list[str]  # one per subscriber ("" = none)
    events: int
    progress_path: str | None
    workers: int
    connect_concurrency: int = 64
    connect_timeout_s: float = 60.0


def headers_for(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


async def _connect_one(
    spec: WorkerSpec, shared: Shared, token: str, frame: bytes, limit: asyncio.Semaphore
) -> Subscriber:
    loop = asyncio.get_running_loop()
    host, port, path = split_url(spec.url)
    async with limit:
        _, sub = await loop.create_connection(
            lambda: Subscriber(shared, spec.dialect, (host, port, path), headers_for(token), frame),
            host,
            port,
        )
        try:
            await asyncio.wait_for(sub.subscribed, spec.connect_timeout_s)
        except BaseException:
            sub.abort()
            raise
        return sub


async def connect_all(spec: WorkerSpec, shared: Shared) -> tuple[list[Subscriber], list[str]]:
    """Open and subscribe every connection of this worker; failures are reported, not raised."""
    frame = subscribe_frame(spec.dialect, spec.procedure, spec.hospital)
    limit = asyncio.Semaphore(spec.connect_concurrency)
    results = await asyncio.gather(
        *(_connect_one(spec, shared, token, frame, limit) for token in spec.tokens),
        return_exceptions=True,
    )
    subs = [r for r in results if isinstance(r, Subscriber)]
    errors = [f"{type(r).__name__}: {r}"[:300] for r in results if isinstance(r, BaseException)]
    return subs, errors


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _sparse(hist: list[int]) -> dict[int, int]:
    return {i: n for i, n in enumerate(hist) if n}


async def _report_progress(subs: list[Subscriber], progress: Progress, index: int) -> None:
    while True:
        live = [s.received for s in subs if not s.lost]
        progress.set_worker(index, min(live) if live else 1 << 62)
        await asyncio.sleep(PROGRESS_EVERY_S)


async def _wait_message(conn: Connection) -> Any:
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()

    def readable() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(conn.fileno(), readable)
    try:
        await ready
    finally:
        loop.remove_reader(conn.fileno())
        # A loop may leave the descriptor non-blocking; a result larger than the pipe's buffer
        # would then fail to send (EAGAIN) instead of waiting for the parent to read.
        os.set_blocking(conn.fileno(), True)
    return conn.recv()


async def await_delivery(subs: list[Subscriber], published: int, idle_s: float) -> None:
    """Until every live subscriber has `published` events, or nothing arrived for idle_s."""
    last_total, last_change = -1, time.monotonic()
    while True:
        live = [s for s in subs if not s.lost]
        if all(s.received >= published for s in live):
            return
        total = sum(s.received for s in subs)
        if total != last_total:
            last_total, last_change = total, time.monotonic()
        elif time.monotonic() - last_change > idle_s:
            return
        await asyncio.sleep(0.01)


def summarize(subs: list[Subscriber], published: int) -> dict[str, int]:
    lost = 0
    for sub in subs:
        lost += published - sub.seen.count(1, 0, published)
    return {
        "subscribers": len(subs),
        "received": sum(s.received for s in subs),
        "lost": lost,
        "duplicated": sum(s.duplicates for s in subs),
        "unexpected": sum(s.unexpected for s in subs),
        "misordered": sum(s.misordered for s in subs),
        "ids_checked": sum(s.ids_checked for s in subs),
        "closed_early": sum(1 for s in subs if s.lost),
    }


async def worker_main(spec: WorkerSpec, conn: Connection) -> None:
    """Protocol with the parent: -> ("ready", info); <- ("finish", published, idle_s);
    -> ("result", info); <- ("exit",)."""
    shared = Shared(spec.events, EVENT_ID_RE[spec.dialect])
    t0 = time.time()
    subs, errors = await connect_all(spec, shared)
    progress = Progress.attach(spec.progress_path, spec.workers) if spec.progress_path else None
    reporter = None
    if progress is not None:
        reporter = asyncio.create_task(_report_progress(subs, progress, spec.index))
    cpu0 = _cpu_seconds()
    conn.send(("ready", {"connected": len(subs), "errors": errors, "connect_s": time.time() - t0}))
    message = await _wait_message(conn)
    while message[0] == "finish":
        published, idle_s = int(message[1]), float(message[2])
        await await_delivery(subs, published, idle_s)
        conn.send(
            (
                "result",
                {
                    **summarize(subs, published),
                    "first": shared.first,
                    "last": shared.last,
                    "cpu_s": _cpu_seconds() - cpu0,
                    "loop": type(asyncio.get_running_loop()).__module__.split(".")[0],
                    "hist_publish": _sparse(shared.hist_publish),
                    "hist_commit": _sparse(shared.hist_commit),
                    "max_publish": shared.max_publish,
                    "max_commit": shared.max_commit,
                },
            )
        )
        message = await _wait_message(conn)
    if reporter is not None:
        reporter.cancel()
    for sub in subs:
        sub.close()
    await asyncio.sleep(0.2)
    if progress is not None:
        progress.close()


def run_worker(spec: WorkerSpec, conn: Connection) -> None:
    """multiprocessing target."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = len(spec.tokens) + 256
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(want, soft), max(want, hard)))
    run_loop(worker_main(spec, conn))


def run_loop(main: Coroutine[Any, Any, None]) -> None:
    """uvloop when installed (a faster client), else asyncio."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
    else:
        uvloop.run(main)
