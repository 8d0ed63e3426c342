"""A small router for protocol tests: the JSON-RPC specification's example methods, a push
feed with replay (like the alert stream), a generator subscription and failure cases."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated

from pydantic import Field

from rpc.context import Context
from rpc.errors import ErrorCode, RpcError
from rpc.router import Router
from rpc.stream import EventSink, PushStream, Tracked
from schemas.base import HospitalId, InputModel, WireModel


class SubtractInput(InputModel):
    minuend: int
    subtrahend: int


class SumInput(InputModel):
    a: int
    b: int
    c: int


class UpdateInput(InputModel):
    a: int
    b: int = 0
    c: int = 0
    d: int = 0
    e: int = 0


class HelloInput(InputModel):
    value: int


class EchoInput(InputModel):
    text: Annotated[str, Field(max_length=100)]


class Tick(WireModel):
    n: int


class TicksInput(InputModel):
    count: Annotated[int, Field(ge=0, le=1000)]
    fail_at: int | None = None


class FeedInput(InputModel):
    hospital_id: HospitalId
    last_event_id: str | None = None


class FeedItem(WireModel):
    hospital_id: str
    seq: int


class Feed:
    """An in-memory event log with live listeners, the shape of the alert stream."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, bytes]] = []  # (id, hospital, payload)
        self.streams: set[FeedStream] = set()
        self.updates: list[int] = []

    def publish(self, hospital_id: str) -> str:
        seq = len(self.events) + 1
        payload = FeedItem(hospital_id=hospital_id, seq=seq).model_dump_json().encode()
        return self.publish_raw(hospital_id, payload)

    def publish_raw(self, hospital_id: str, payload: bytes) -> str:
        """An event with a payload that is already JSON (e.g. a large one)."""
        event_id = f"{len(self.events) + 1:08d}"
        self.events.append((event_id, hospital_id, payload))
        for stream in list(self.streams):
            stream.push(event_id, hospital_id, payload)
        return event_id


class FeedStream(PushStream):
    def __init__(self, feed: Feed, hospital_id: str, after: str | None) -> None:
        super().__init__()
        self.feed, self.hospital_id, self.after = feed, hospital_id, after
        self.pending: list[tuple[str, bytes]] = []
        self.live: EventSink | None = None
        feed.streams.add(self)  # live from construction

    def push(self, event_id: str, hospital_id: str, payload: bytes) -> None:
        if hospital_id != self.hospital_id:
            return
        if self.live is None:
            self.pending.append((event_id, payload))
        else:
            self.live.event(event_id, payload)

    async def _open(self, sink: EventSink) -> None:
        last = self.after or ""
        for event_id, hospital, payload in self.feed.events:
            if hospital == self.hospital_id and event_id > last:
                sink.event(event_id, payload)
                last = event_id
        for event_id, payload in self.pending:
            if event_id > last:
                sink.event(event_id, payload)
        self.pending.clear()
        self.live = sink

    def _close(self) -> None:
        self.feed.streams.discard(self)


router = Router()


@router.mutation(name="subtract")
async def subtract(ctx: Context, input: SubtractInput) -> int:
    return input.minuend - input.subtrahend


@router.query(name="sum")
async def sum_(ctx: Context, input: SumInput) -> int:
    return input.a + input.b + input.c


@router.mutation(name="update")
async def update(ctx: Context, input: UpdateInput) -> None:
    ctx.services.updates.append(input.a)


@router.mutation(name="notify_hello")
async def notify_hello(ctx: Context, input: HelloInput) -> None:
    ctx.services.updates.append(input.value)


@router.query(name="get_data")
async def get_data(ctx: Context) -> list[str | int]:
    return ["hello", 5]


@router.query(name="demo.echo", public=True)
async def echo(ctx: Context, input: EchoInput) -> str:
    return input.text


@router.query(name="demo.boom", public=True)
async def boom(ctx: Context) -> str:
    raise ValueError("secret internal detail")


@router.mutation(name="demo.conflict", roles={"admin"})
async def conflict(ctx: Context, input: EchoInput) -> str:
    raise RpcError(ErrorCode.CONFLICT, "Already done", {"status": "resolved"})


class MeetInput(InputModel):
    name: Annotated[str, Field(max_length=20)]


_waiting: list[asyncio.Future[str]] = []


@router.mutation(name="demo.meet", public=True)
async def meet(ctx: Context, input: MeetInput) -> str:
    """Pairs up with the next call: the first waits for the second. Two calls in one batch
    complete only when the batch runs them concurrently."""
    if _waiting:
        _waiting.pop().set_result(input.name)
        return "second"
    future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    _waiting.append(future)
    return f"met {await future}"


class Hold:
    """A call that waits until the test lets it go. Each `demo.hold` call puts a future into
    `started` (so a test can wait, without sleeping, for the call to be running) and answers
    with what the test sets it to; `finished` lists the names of calls that ran to the end."""

    def __init__(self) -> None:
        self.started: asyncio.Queue[tuple[str, asyncio.Future[str]]] = asyncio.Queue()
        self.finished: list[str] = []


holds = Hold()


@router.mutation(name="demo.hold", public=True)
async def hold(ctx: Context, input: MeetInput) -> str:
    release: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    holds.started.put_nowait((input.name, release))
    answer = await release
    holds.finished.append(input.name)
    return answer


@router.subscription(name="demo.ticks")
async def ticks(ctx: Context, input: TicksInput) -> AsyncIterator[Tick]:
    for n in range(input.count):
        if input.fail_at == n:
            raise RpcError(ErrorCode.TOO_MANY_REQUESTS, "slow down")
        yield Tick(n=n)


@router.subscription(name="demo.feed")
async def feed(ctx: Context, input: FeedInput) -> AsyncIterator[Tracked[FeedItem]]:
    return FeedStream(ctx.services, input.hospital_id, input.last_event_id)
