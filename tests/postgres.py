"""PostgreSQL for the tests: a database of its own for each test run, a fresh schema for each
test, and a TCP proxy a test can cut to make the database unreachable.

The server is ALERTWIRE_TEST_POSTGRES (default: the local one, user postgres, trust auth).
Without it the tests that need it skip with the reason; in CI (CI=true) they fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar
from urllib.parse import urlencode, urlsplit, urlunsplit

import asyncpg

from tests.needs import missing

T = TypeVar("T")

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
CONNECT_TIMEOUT_S = 5.0


def admin_url() -> str:
    return os.environ.get("ALERTWIRE_TEST_POSTGRES", DEFAULT_URL)


def where(url: str) -> str:
    """host:port/database of a URL, without user or password (for messages)."""
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port or 5432}{parts.path}"


def with_database(url: str, database: str, **settings: str) -> str:
    """The same server, another database; `settings` become server settings (search_path)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{database}", query=urlencode(settings)))


def run_sync(make: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to completion from synchronous code, on a loop in another thread (a
    loop may already be running in this one)."""

    async def main() -> T:
        return await make()

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, main()).result()


async def connect(url: str) -> asyncpg.Connection:
    return await asyncpg.connect(url, timeout=CONNECT_TIMEOUT_S)


@contextlib.contextmanager
def run_database() -> Iterator[str]:
    """A database created for this test run and dropped at its end, whatever happened; skips
    (fails in CI) when PostgreSQL cannot be reached."""
    admin = admin_url()
    name = f"alertwire_test_{secrets.token_hex(6)}"

    async def create() -> None:
        conn = await connect(admin)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    async def drop() -> None:
        conn = await connect(admin)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    try:
        run_sync(create)
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        missing(f"PostgreSQL is not reachable at {where(admin)} ({type(exc).__name__})")
    try:
        yield with_database(admin, name)
    finally:
        run_sync(drop)


@contextlib.asynccontextmanager
async def fresh_schema(database_url: str) -> AsyncIterator[str]:
    """A new, empty schema in the test run's database; yields a URL whose connections use
    it (as their search_path). Dropped on the way out."""
    schema = f"t_{secrets.token_hex(6)}"
    conn = await connect(database_url)
    try:
        await conn.execute(f'CREATE SCHEMA "{schema}"')
        yield with_database(database_url, urlsplit(database_url).path[1:], search_path=schema)
    finally:
        # A store a failed test left open must not hold the run up: its database goes anyway.
        with contextlib.suppress(asyncpg.PostgresError):
            await conn.execute("SET lock_timeout = '5s'")
            await conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await conn.close()


async def fetch(url: str, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    """Rows as tuples, through a connection of its own: only what was committed is seen.
    `?` placeholders, as the SQLite tests write them."""
    count = iter(range(1, len(args) + 1))
    sql = re.sub(r"\?", lambda _: f"${next(count)}", sql)
    conn = await connect(url)
    try:
        return [tuple(row) for row in await conn.fetch(sql, *args)]
    finally:
        await conn.close()


async def terminate_backends(url: str, application_name: str = "alertwire") -> int:
    """Kill the server side of every connection an application holds to the URL's database,
    waiting until each is gone. Returns how many there were."""
    conn = await connect(url)
    try:
        rows = await conn.fetch(
            "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity "
            "WHERE datname = current_database() AND application_name = $1 "
            "AND pid <> pg_backend_pid()",
            application_name,
        )
    finally:
        await conn.close()
    assert all(row[0] for row in rows), "a backend outlived pg_terminate_backend"
    return len(rows)


class TcpProxy:
    """Forwards a local port to PostgreSQL. `cut()` closes the listener and every connection
    through it, so the database is unreachable (refused at once); `restore()` listens on the
    same port again."""

    def __init__(self, target_url: str) -> None:
        parts = urlsplit(target_url)
        self._target = (parts.hostname or "127.0.0.1", parts.port or 5432)
        self._url = target_url
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._pumps: set[asyncio.Task[None]] = set()
        self.port = 0

    @property
    def url(self) -> str:
        """The target URL with the proxy in place of the server."""
        parts = urlsplit(self._url)
        user = f"{parts.username}@" if parts.username else ""
        netloc = f"{user}127.0.0.1:{self.port}"
        return urlunsplit(parts._replace(netloc=netloc))

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in tuple(self._writers):
            writer.transport.abort()
        for pump in tuple(self._pumps):
            pump.cancel()
        await asyncio.gather(*self._pumps, return_exceptions=True)

    async def restore(self) -> None:
        await self.start()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pump(source, sink))
            self._pumps.add(task)
            task.add_done_callback(self._pumps.discard)

    async def _pump(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        try:
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            self._writers.discard(sink)
            sink.transport.abort()
