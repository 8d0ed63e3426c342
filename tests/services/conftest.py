"""Fixtures for the healthcare services, driven directly (no sockets) on a real SQLite file."""

from __future__ import annotations

import contextlib
import re
import sqlite3
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from rpc.connections import ConnectionRegistry
from schemas.alerts import AlertEvent, CreateAlertInput, Priority
from services.alerts import AlertService
from services.config import DEFAULT_TARGETS, DomainConfig
from services.container import Services
from services.store import StoredEvent
from services.store_sqlite import SqliteAlertStore

T0 = 1_700_000_000.0  # an arbitrary fixed "now" for the injected clocks
ISO_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


class FakeClock:
    """A clock the test moves by hand: services read it, nothing sleeps."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def parse_iso(value: str) -> float:
    """An ISO 8601 UTC time with a `Z` -> unix seconds (asserting the shape on the way)."""
    assert ISO_Z.match(value), value
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def alert_input(
    hospital_id: str = "h1", priority: Priority = "high", title: str = "Bed 4 call button"
) -> CreateAlertInput:
    return CreateAlertInput(
        hospital_id=hospital_id,
        type="call_button",
        priority=priority,
        title=title,
        patient_id="p-1",
        location="ward 3",
    )


def query(path: str, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    """Read the file through a connection of its own: only what was committed is seen."""
    with contextlib.closing(sqlite3.connect(path)) as db:
        return list(db.execute(sql, args).fetchall())


def decode(event: StoredEvent) -> AlertEvent:
    return AlertEvent.model_validate_json(event.payload)


class Published:
    """Collects what a store's `on_commit` hands over, in order."""

    def __init__(self) -> None:
        self.events: list[StoredEvent] = []
        self.calls = 0

    def __call__(self, events: Sequence[StoredEvent]) -> None:
        self.calls += 1
        self.events.extend(events)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def db_path(tmp_path: Path) -> str:
    return str(tmp_path / "data" / "alertwire.db")


@pytest.fixture
def config(db_path: str) -> DomainConfig:
    return DomainConfig(database_path=db_path)


@pytest.fixture
def registry() -> ConnectionRegistry:
    return ConnectionRegistry()


@pytest.fixture
async def services(
    config: DomainConfig, registry: ConnectionRegistry, clock: FakeClock
) -> AsyncIterator[Services]:
    svc = await Services.open(config, registry, clock=clock, background=False)
    try:
        yield svc
    finally:
        await svc.close()


@contextlib.asynccontextmanager
async def open_store(path: str) -> AsyncIterator[SqliteAlertStore]:
    """A bare store (no subscriptions or metrics), its commits recorded in `store.on_commit`;
    closed on the way out whatever happened."""
    sqlite = SqliteAlertStore(path)
    await sqlite.open()
    sqlite.on_commit = Published()
    try:
        yield sqlite
    finally:
        await sqlite.close()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteAlertStore]:
    async with open_store(str(tmp_path / "store.db")) as sqlite:
        yield sqlite


def published(store: SqliteAlertStore) -> Published:
    assert isinstance(store.on_commit, Published)
    return store.on_commit


@pytest.fixture
def alerts(store: SqliteAlertStore, clock: FakeClock) -> AlertService:
    return AlertService(store, dict(DEFAULT_TARGETS), clock)
