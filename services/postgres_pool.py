"""Connections to PostgreSQL: the pool the store opens, and what a refused or lost connection
means to a caller.

A connection that cannot be had or dies during a call is SERVICE_UNAVAILABLE (CONTRACT 7:
calls that need the database fail at once and service resumes by itself). asyncpg's pool
replaces a closed connection on the next acquire, so recovery needs no restart. Calls that are
safe to repeat are tried once more on a fresh connection before the caller hears of it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

import asyncpg

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    # A connection of its own or one lent by the pool: both run the same statements.
    Connection: TypeAlias = asyncpg.Connection[Any] | PoolConnectionProxy[Any]

from rpc.errors import ErrorCode, RpcError

log = logging.getLogger("alertwire.store")

T = TypeVar("T")

CONNECT_TIMEOUT_S = 5.0
POOL_MIN = 1
POOL_MAX = 10

# What a database that is down, restarting, unreachable or out of connections raises; the
# SQL errors of a reachable database (constraints, syntax) are not among them.
LOST: tuple[type[BaseException], ...] = (
    OSError,  # refused, reset, unreachable (ConnectionError is one)
    TimeoutError,  # connecting took longer than CONNECT_TIMEOUT_S
    asyncpg.PostgresConnectionError,  # class 08, and a connection closed mid-operation
    asyncpg.exceptions.OperatorInterventionError,  # class 57: shutdown, terminated backend
    asyncpg.exceptions.InsufficientResourcesError,  # class 53: too many connections
    asyncpg.exceptions.ConnectionDoesNotExistError,
)


def unavailable() -> RpcError:
    return RpcError(ErrorCode.SERVICE_UNAVAILABLE, "Storage is unavailable; retry shortly")


def lost(exc: BaseException) -> RpcError:
    """The error for a caller, logged by kind only (a message could echo connection details)."""
    log.warning("PostgreSQL is unavailable (%s)", type(exc).__name__)
    return unavailable()


async def create_pool(url: str) -> asyncpg.Pool:
    return await asyncpg.create_pool(
        url,
        min_size=POOL_MIN,
        max_size=POOL_MAX,
        timeout=CONNECT_TIMEOUT_S,
        # Set here, not left to the server's configuration: a commit the store reports is
        # on disk (CONTRACT: durable), whatever the database's default.
        server_settings={"synchronous_commit": "on", "application_name": "alertwire"},
    )


async def repeatable(pool: asyncpg.Pool | None, call: Callable[[Connection], Awaitable[T]]) -> T:
    """`call(connection)` on a pooled connection, for calls that are safe to repeat (reads, a
    whole transaction): tried once more on a fresh connection when the first turns out to be
    dead (a backend terminated while idle is noticed only when used)."""
    try:
        return await once(pool, call)
    except LOST:
        pass
    try:
        return await once(pool, call)
    except LOST as exc:
        raise lost(exc) from exc


async def once(pool: asyncpg.Pool | None, call: Callable[[Connection], Awaitable[T]]) -> T:
    if pool is None:
        raise not_open()
    try:
        async with pool.acquire() as conn:
            return await call(conn)
    except asyncpg.InterfaceError as exc:
        if pool.is_closing():  # the store is closing: an error to report, not a bug
            raise not_open() from exc
        raise


def not_open() -> RpcError:
    return RpcError(ErrorCode.SERVICE_UNAVAILABLE, "Storage is not open")
