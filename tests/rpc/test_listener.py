"""The throttled listener: a burst of connections is taken a few per loop iteration, on
asyncio's loop and on uvloop, and everything it accepts is served."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
import uvloop

from rpc.transport_aiohttp.listener import ThrottledListener, bind

BURST = 40
BATCH = 4


class Echo(asyncio.Protocol):
    """Answers each connection's first bytes, and records the loop iteration it started on."""

    def __init__(self, record: Callable[[], None]) -> None:
        self._record = record
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self._record()

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(b"ok:" + data)


async def burst_scenario() -> tuple[int, int, int]:
    """(connections served, largest number set up in one loop iteration, iterations seen)."""
    loop = asyncio.get_running_loop()
    iteration = 0
    per_iteration: dict[int, int] = {}
    ticking = True

    def tick() -> None:
        nonlocal iteration
        iteration += 1
        if ticking:
            loop.call_soon(tick)

    def record() -> None:
        per_iteration[iteration] = per_iteration.get(iteration, 0) + 1

    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    listener = ThrottledListener(loop, sock, lambda: Echo(record), batch=BATCH, backlog=256)
    await listener.start_serving()
    assert listener.is_serving()
    assert listener.sockets == (sock,)
    # The whole burst is queued in the kernel before the loop looks at the listener again.
    clients = []
    for _ in range(BURST):
        client = socket.socket()
        client.connect(("127.0.0.1", port))
        clients.append(client)
    loop.call_soon(tick)
    try:
        answers = await asyncio.gather(*(exchange(loop, c, n) for n, c in enumerate(clients)))
    finally:
        ticking = False
        listener.close()
        await listener.wait_closed()
        for client in clients:
            client.close()
    assert answers == [b"ok:%d" % n for n in range(BURST)]
    assert not listener.is_serving()
    assert not listener.sockets
    return sum(per_iteration.values()), max(per_iteration.values()), len(per_iteration)


async def exchange(loop: asyncio.AbstractEventLoop, client: socket.socket, n: int) -> bytes:
    client.setblocking(False)
    await loop.sock_sendall(client, b"%d" % n)
    return await loop.sock_recv(client, 64)


def run_on(loop_factory: Callable[[], asyncio.AbstractEventLoop]) -> tuple[int, int, int]:
    main: Callable[[], Coroutine[Any, Any, tuple[int, int, int]]] = burst_scenario
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(main())


@pytest.mark.parametrize(
    "loop_factory", [asyncio.new_event_loop, uvloop.new_event_loop], ids=["asyncio", "uvloop"]
)
def test_a_burst_is_accepted_a_few_per_iteration(
    loop_factory: Callable[[], asyncio.AbstractEventLoop],
) -> None:
    served, most_at_once, iterations = run_on(loop_factory)
    assert served == BURST
    assert most_at_once <= BATCH
    assert iterations >= BURST // BATCH


def test_batch_must_be_positive() -> None:
    loop = asyncio.new_event_loop()
    sock = bind("127.0.0.1", 0)
    try:
        with pytest.raises(ValueError):
            ThrottledListener(loop, sock, asyncio.Protocol, batch=0, backlog=8)
    finally:
        sock.close()
        loop.close()


def test_bind_refuses_a_taken_port_and_leaks_nothing() -> None:
    first = bind("127.0.0.1", 0, reuse_address=False)
    first.listen(1)
    try:
        with pytest.raises(OSError):
            bind("127.0.0.1", first.getsockname()[1], reuse_address=False)
    finally:
        first.close()
