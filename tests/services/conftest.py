"""Fixtures for the healthcare services, driven directly (no sockets), on each store: a real
SQLite file and a real PostgreSQL database (tests/services/stores.py)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import pytest

from rpc.connections import ConnectionRegistry
from schemas.alerts import AlertEvent, CreateAlertInput, Priority
from services.alerts import AlertService
from services.config import DEFAULT_TARGETS, DomainConfig
from services.container import Services
from services.store import StoredEvent
from tests.services.stores import (
    STORES,
    AnyStore,
    Backend,
    PostgresBackend,
    SqliteBackend,
    open_store,
)

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


def decode(event: StoredEvent) -> AlertEvent:
    return AlertEvent.model_validate_json(event.payload)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=STORES)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """Each store behind the seam; every test that uses a store runs on each. PostgreSQL
    tests get an empty schema of their own."""
    if request.param == "sqlite":
        (tmp_path / "data").mkdir(exist_ok=True)
        return SqliteBackend(str(tmp_path / "data" / "alertwire.db"))
    return PostgresBackend(request.getfixturevalue("postgres_url"))


@pytest.fixture
def config(backend: Backend) -> DomainConfig:
    return backend.config()


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


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[AnyStore]:
    async with open_store(backend) as opened:
        yield opened


@pytest.fixture
def alerts(store: AnyStore, clock: FakeClock) -> AlertService:
    return AlertService(store, dict(DEFAULT_TARGETS), clock)
