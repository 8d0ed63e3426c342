"""Redis for the tests: the machine's shared server under a key prefix of each test's own
(removed afterwards; never flushed), and redis-server processes a test starts itself on a free
port when it must stop, restart or flush one.

The shared server is ALERTWIRE_TEST_REDIS (default redis://127.0.0.1:6379/0). Without it, or
without `redis-server` for the tests that start their own, the tests skip with the reason;
in CI (CI=true) they fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from redis.asyncio import Redis
from redis.exceptions import RedisError

from tests.needs import missing

DEFAULT_URL = "redis://127.0.0.1:6379/0"
TIMEOUT_S = 10.0


def shared_url() -> str:
    return os.environ.get("ALERTWIRE_TEST_REDIS", DEFAULT_URL)


def new_prefix() -> str:
    """An ALERTWIRE_CLUSTER of the test's own: its keys and channels are apart from others'."""
    return f"awtest-{secrets.token_hex(6)}"


async def reachable(url: str) -> bool:
    client = Redis.from_url(url, socket_connect_timeout=2.0, socket_timeout=2.0)
    try:
        return bool(await client.ping())
    except (RedisError, OSError):
        return False
    finally:
        await client.aclose()


async def delete_prefix(url: str, prefix: str) -> int:
    """Remove every key of one test's cluster (SCAN, never FLUSHALL: the server is shared)."""
    client = Redis.from_url(url, socket_connect_timeout=2.0, socket_timeout=5.0)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}:*", count=500)]
        return int(await client.delete(*keys)) if keys else 0
    finally:
        await client.aclose()


@contextlib.asynccontextmanager
async def shared_cluster() -> AsyncIterator[tuple[str, str]]:
    """(url, prefix) on the shared server; the prefix's keys are removed on the way out."""
    url = shared_url()
    if not await reachable(url):
        missing(f"Redis is not reachable at {url}")
    prefix = new_prefix()
    try:
        yield url, prefix
    finally:
        await delete_prefix(url, prefix)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def poll(condition: Callable[[], Awaitable[bool]], what: str, timeout_s: float) -> None:
    """Ask `condition` until it holds; fail after `timeout_s`, even when one of the questions
    itself hangs."""
    try:
        async with asyncio.timeout(timeout_s):
            while True:
                if await condition():
                    return
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


class OwnRedis:
    """A redis-server of the test's own on 127.0.0.1, without persistence: stop, start again
    on the same port, flush, as the test needs."""

    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            missing("redis-server is not installed")
        self.binary = str(binary)
        self.workdir = workdir
        self.port = free_port()
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1"]
        args += ["--save", "", "--appendonly", "no", "--dir", str(self.workdir)]
        proc = await asyncio.create_subprocess_exec(
            *args, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
        )
        self.proc = proc

        async def up() -> bool:
            assert proc.returncode is None, "redis-server exited"
            return await reachable(self.url)

        await poll(up, f"redis-server on port {self.port}", TIMEOUT_S)

    async def stop(self) -> None:
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        if proc.returncode is None:
            proc.kill()  # as a crash would: no goodbye to the clients
        await asyncio.wait_for(proc.wait(), TIMEOUT_S)

    async def flush(self) -> None:
        client = Redis.from_url(self.url, socket_connect_timeout=2.0, socket_timeout=5.0)
        try:
            await client.flushall()
        finally:
            await client.aclose()
