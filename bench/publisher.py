"""The mutation publisher: `healthcare.createAlert` over WebSocket connections of its own.

Alerts are numbered 0..E-1 in the order they are sent; the title carries the number and the
send time (`bench-<seq>-<unix time>`) so subscribers can tell loss, duplication and latency
without decoding JSON. Each connection keeps up to `in_flight` calls outstanding; the pacer
holds the publisher to a fixed rate and to at most `window` alerts ahead of the slowest
subscriber.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from bench.loadgen import BUCKETS_PER_S, HIST_SIZE, headers_for
from bench.progress import Pacer
from bench.wsclient import WsClientProtocol, iter_frames, split_url

CREATE = "healthcare.createAlert"


def alert_input(hospital: str, seq: int, stamp: float | None = None) -> dict[str, Any]:
    """`stamp`: the alert's scheduled send (Pacer.scheduled), now by default."""
    return {
        "hospitalId": hospital,
        "type": "call_button",
        "priority": "high",
        "title": f"bench-{seq}-{time.time() if stamp is None else stamp:.6f}",
        "message": "Benchmark alert",
        "patientId": "p-bench",
        "location": "Ward 1, bed 1",
    }


def mutation_frame(dialect: str, request_id: int, params: dict[str, Any]) -> bytes:
    if dialect == "jsonrpc":
        return orjson.dumps(
            {"jsonrpc": "2.0", "id": request_id, "method": CREATE, "params": params}
        )
    return orjson.dumps(
        {"id": request_id, "method": "mutation", "params": {"path": CREATE, "input": params}}
    )


class RpcConnection(WsClientProtocol):
    """Replies by id; low volume, so each frame is decoded."""

    def __init__(self, target: tuple[str, int, str], headers: dict[str, str]) -> None:
        super().__init__(*target, headers)
        self.pending: dict[int, asyncio.Future[Any]] = {}

    def frames_received(self, view: bytes | bytearray, end: int) -> None:
        for opcode, payload in iter_frames(view, end):
            if opcode != 1 or payload == b"PING":
                continue
            with contextlib.suppress(orjson.JSONDecodeError):
                reply = orjson.loads(payload)
                if isinstance(reply, dict):
                    future = self.pending.pop(reply.get("id"), None)  # type: ignore[arg-type]
                    if future is not None and not future.done():
                        future.set_result(reply)

    def closed(self) -> None:
        for future in self.pending.values():
            if not future.done():
                future.set_exception(ConnectionError(f"closed ({self.close_code})"))
        self.pending.clear()


@dataclass
class PublishReport:
    sent: int = 0
    ok: int = 0
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    first_send: float = 0.0
    last_reply: float = 0.0
    stalled: bool = False
    hist: list[int] = field(default_factory=lambda: [0] * HIST_SIZE)

    def as_dict(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "ok": self.ok,
            "errors": self.errors,
            "error_samples": self.error_samples,
            "stalled": self.stalled,
            "first_send": self.first_send,
            "last_reply": self.last_reply,
        }


class MutationPublisher:
    def __init__(
        self,
        url: str,
        dialect: str,
        hospital: str,
        token: str,
        *,
        connections: int = 1,
        in_flight: int = 16,
    ) -> None:
        self.url, self.dialect, self.hospital, self.token = url, dialect, hospital, token
        self.connections = connections
        self.in_flight = in_flight
        self.report = PublishReport()
        self._next = 0

    async def _open(self) -> RpcConnection:
        host, port, path = split_url(self.url)
        loop = asyncio.get_running_loop()
        _, conn = await loop.create_connection(
            lambda: RpcConnection((host, port, path), headers_for(self.token)), host, port
        )
        await asyncio.wait_for(conn.open_future, 30)
        return conn

    async def run(self, events: int, pacer: Pacer) -> PublishReport:
        conns = [await self._open() for _ in range(self.connections)]
        try:
            await asyncio.gather(*(self._drive(conn, events, pacer) for conn in conns))
        finally:
            for conn in conns:
                conn.close()
        return self.report

    async def _drive(self, conn: RpcConnection, events: int, pacer: Pacer) -> None:
        slots = asyncio.Semaphore(self.in_flight)
        calls: set[asyncio.Task[None]] = set()
        request_id = 0
        report = self.report
        while self._next < events and not conn.lost:
            wait = pacer.delay(self._next)
            if wait > 0:
                if pacer.stalled():
                    report.stalled = True
                    break
                await asyncio.sleep(wait)
                continue
            await slots.acquire()
            if self._next >= events:
                slots.release()
                break
            seq = self._next
            self._next += 1
            request_id += 1
            future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            conn.pending[request_id] = future
            sent = pacer.scheduled(seq)
            if not report.first_send:
                report.first_send = sent
            conn.send_text(
                mutation_frame(self.dialect, request_id, alert_input(self.hospital, seq, sent))
            )
            report.sent += 1
            task = asyncio.create_task(self._reply(future, sent, slots))
            calls.add(task)
            task.add_done_callback(calls.discard)
        if calls:
            await asyncio.wait(calls, timeout=30)

    async def _reply(
        self, future: asyncio.Future[Any], sent: float, slots: asyncio.Semaphore
    ) -> None:
        report = self.report
        try:
            reply = await asyncio.wait_for(future, 30)
        except (TimeoutError, ConnectionError) as exc:
            report.errors += 1
            if len(report.error_samples) < 5:
                report.error_samples.append(f"{type(exc).__name__}: {exc}")
            return
        finally:
            slots.release()
        now = time.time()
        report.last_reply = now
        if "error" in reply:
            report.errors += 1
            if len(report.error_samples) < 5:
                report.error_samples.append(orjson.dumps(reply["error"]).decode()[:300])
            return
        report.ok += 1
        bucket = min(int((now - sent) * BUCKETS_PER_S), HIST_SIZE - 1)
        report.hist[bucket] += 1
