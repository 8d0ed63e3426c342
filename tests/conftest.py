"""Shared fixtures: tokens, and an in-process server on the demo router."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from routers.app import app_router
from rpc.auth import AuthConfig, issue_token
from rpc.connections import ConnectionRegistry
from rpc.dispatch import Dispatcher
from rpc.limits import Limits
from rpc.router import Router
from rpc.transport_aiohttp import ServerState, create_app
from server.logs import AIOHTTP_SERVER_LOGGER, AiohttpClientErrors
from tests.postgres import fresh_schema, run_database
from tests.rpc import demo

SECRET = "test-secret-0123456789-abcdefghijklmnop"
AUTH = AuthConfig(SECRET)

TokenFactory = Callable[..., str]


def make_token(
    sub: str = "nurse-1",
    role: str = "nurse",
    hospitals: list[str] | None = None,
    ttl: float = 3600,
    **extra: Any,
) -> str:
    return issue_token(
        AUTH,
        sub=sub,
        role=role,
        hospitals=["h1"] if hospitals is None else hospitals,
        ttl_seconds=ttl,
        now=time.time(),
        **extra,
    )


@pytest.fixture
def token() -> TokenFactory:
    return make_token


def demo_router() -> Router:
    root = Router()
    for proc in demo.router.procedures.values():
        root._add(proc)
    for proc in app_router.procedures.values():
        root._add(proc)
    return root


def make_state(
    services: Any = None, limits: Limits | None = None, router: Router | None = None
) -> ServerState:
    state = ServerState(
        dispatcher=Dispatcher(router or demo_router(), services),
        auth=AUTH,
        limits=limits or Limits(),
        registry=ConnectionRegistry(),
    )
    state.ready = True
    return state


@pytest.fixture
def feed() -> demo.Feed:
    return demo.Feed()


@pytest.fixture
def limits() -> Limits:
    return Limits()


@pytest.fixture
async def client(feed: demo.Feed, limits: Limits) -> AsyncIterator[TestClient[Any, Any]]:
    state = make_state(feed, limits)
    async with TestClient(TestServer(create_app(state))) as test_client:
        yield test_client


@pytest.fixture
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    """The process umask for one test (`request.param` when parametrised indirectly, else
    the common 022), restored afterwards."""
    mask = int(getattr(request, "param", 0o022))
    old = os.umask(mask)
    try:
        yield mask
    finally:
        os.umask(old)


@pytest.fixture
def aiohttp_server_log() -> Iterator[logging.Logger]:
    """The aiohttp.server logger without an AiohttpClientErrors filter, its filters and
    level put back afterwards."""
    logger = logging.getLogger(AIOHTTP_SERVER_LOGGER)
    filters, level = list(logger.filters), logger.level
    logger.filters[:] = [f for f in filters if not isinstance(f, AiohttpClientErrors)]
    try:
        yield logger
    finally:
        logger.filters[:] = filters
        logger.setLevel(level)


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """This test run's own PostgreSQL database, created on first use and dropped at the end
    (skips, or fails in CI, without PostgreSQL)."""
    with run_database() as url:
        yield url


@pytest.fixture
async def postgres_url(postgres_database: str) -> AsyncIterator[str]:
    """A URL whose connections see an empty schema of this test's own."""
    async with fresh_schema(postgres_database) as url:
        yield url
