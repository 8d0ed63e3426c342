"""The stores the service tests run on: one `Backend` per implementation of the AlertStore seam,
so that one contract suite (and every service test) runs on each, and they cannot drift."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import AsyncIterator, Sequence
from typing import Any

import asyncpg

from services.config import DomainConfig
from services.store import StoredEvent
from services.store_postgres import PostgresAlertStore
from services.store_sqlite import SqliteAlertStore
from tests.postgres import fetch, run_sync

AnyStore = SqliteAlertStore | PostgresAlertStore
STORES = ("sqlite", "postgres")


def sqlite_query(path: str, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    """Read the file through a connection of its own: only what was committed is seen."""
    with contextlib.closing(sqlite3.connect(path)) as db:
        return list(db.execute(sql, args).fetchall())


class SqliteBackend:
    name = "sqlite"
    # What the database raises when a NOT NULL column is given nothing.
    integrity_error: type[Exception] = sqlite3.IntegrityError

    def __init__(self, path: str) -> None:
        self.path = path

    def new_store(self) -> SqliteAlertStore:
        return SqliteAlertStore(self.path)

    def config(self, **fields: Any) -> DomainConfig:
        return DomainConfig(database_path=self.path, **fields)

    def query(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        return sqlite_query(self.path, sql, *args)


class PostgresBackend:
    name = "postgres"
    integrity_error: type[Exception] = asyncpg.NotNullViolationError

    def __init__(self, url: str) -> None:
        self.url = url

    def new_store(self) -> PostgresAlertStore:
        return PostgresAlertStore(self.url)

    def config(self, **fields: Any) -> DomainConfig:
        return DomainConfig(postgres_url=self.url, **fields)

    def query(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        """Committed rows, read synchronously (from an `on_commit` too); `?` placeholders."""
        return run_sync(lambda: fetch(self.url, sql, *args))


Backend = SqliteBackend | PostgresBackend


class Published:
    """Collects what a store's `on_commit` hands over, in order."""

    def __init__(self) -> None:
        self.events: list[StoredEvent] = []
        self.calls = 0

    def __call__(self, events: Sequence[StoredEvent]) -> None:
        self.calls += 1
        self.events.extend(events)


@contextlib.asynccontextmanager
async def open_store(backend: Backend) -> AsyncIterator[AnyStore]:
    """A bare store (no subscriptions or metrics) on the backend's database, its commits
    recorded in `store.on_commit`; closed on the way out whatever happened."""
    store = backend.new_store()
    await store.open()
    store.on_commit = Published()
    try:
        yield store
    finally:
        await store.close()


@contextlib.asynccontextmanager
async def open_sqlite(path: str) -> AsyncIterator[SqliteAlertStore]:
    """open_store on an SQLite file, typed as the SQLite store (for SQLite-only tests)."""
    async with open_store(SqliteBackend(path)) as store:
        assert isinstance(store, SqliteAlertStore)
        yield store


def published(store: AnyStore) -> Published:
    assert isinstance(store.on_commit, Published)
    return store.on_commit
