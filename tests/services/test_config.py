"""services/config.py: DATABASE_URL, retention, escalation targets and SQLITE_SYNCHRONOUS, and
that a parsed configuration opens the store it describes."""

from __future__ import annotations

from pathlib import Path

import pytest

from rpc.connections import ConnectionRegistry
from services.config import (
    DEFAULT_TARGETS,
    DomainConfig,
    DomainConfigError,
    parse_targets,
    sqlite_path,
    without_password,
)
from services.container import Services, make_store
from services.store_postgres import PostgresAlertStore
from services.store_sqlite import SqliteAlertStore
from tests.services.conftest import alert_input


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///alertwire.db", "alertwire.db"),
        ("sqlite:///data/alertwire.db", "data/alertwire.db"),
        ("sqlite:////var/lib/alertwire/alerts.db", "/var/lib/alertwire/alerts.db"),
        ("sqlite:///:memory:", ":memory:"),
    ],
)
def test_database_url(url: str, path: str) -> None:
    assert sqlite_path(url) == path
    assert DomainConfig.from_env(url, {}).database_path == path


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://user@db/alertwire",
        "postgres://alertwire@127.0.0.1:5432/alerts?sslmode=disable",
    ],
)
def test_a_postgresql_url_chooses_postgresql(url: str) -> None:
    config = DomainConfig.from_env(url, {})
    assert config.postgres_url == url  # asyncpg reads the URL as it is
    assert isinstance(make_store(config), PostgresAlertStore)
    assert isinstance(make_store(DomainConfig.from_env("sqlite:///a.db", {})), SqliteAlertStore)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://aw:s3cret@db:5432/alerts", "postgresql://aw:***@db:5432/alerts"),
        ("postgresql://aw@db/alerts", "postgresql://aw@db/alerts"),
        ("sqlite:///data/alertwire.db", "sqlite:///data/alertwire.db"),
    ],
)
def test_a_database_password_is_never_shown(url: str, shown: str) -> None:
    assert without_password(url) == shown


@pytest.mark.parametrize(
    "url",
    [
        "",
        "alertwire.db",
        "sqlite:///",
        "sqlite://alertwire.db",
        "sqlite:////",
        "sqlite:///data/",
        "mysql://user@db/alertwire",
        "postgresql://",
    ],
)
def test_a_bad_database_url_is_refused(url: str) -> None:
    if not url.startswith("postgresql"):
        with pytest.raises(DomainConfigError, match="DATABASE_URL"):
            sqlite_path(url)
    with pytest.raises(DomainConfigError, match="DATABASE_URL"):
        DomainConfig.from_env(url, {})


def test_defaults() -> None:
    config = DomainConfig.from_env("sqlite:///a.db", {})
    assert config.retention_s == 7 * 86_400
    assert config.targets == DEFAULT_TARGETS
    assert config.synchronous == "FULL"


@pytest.mark.parametrize(
    ("days", "seconds"), [("7", 604_800.0), ("0.5", 43_200.0), ("30", 2_592_000.0)]
)
def test_retention_days(days: str, seconds: float) -> None:
    env = {"ALERTWIRE_RETENTION_DAYS": days}
    assert DomainConfig.from_env("sqlite:///a.db", env).retention_s == seconds


@pytest.mark.parametrize("days", ["0", "-1", "abc", "", "nan"])
def test_bad_retention_is_refused(days: str) -> None:
    with pytest.raises(DomainConfigError, match="ALERTWIRE_RETENTION_DAYS"):
        DomainConfig.from_env("sqlite:///a.db", {"ALERTWIRE_RETENTION_DAYS": days})


@pytest.mark.parametrize(("raw", "mode"), [("FULL", "FULL"), ("normal", "NORMAL")])
def test_sqlite_synchronous(raw: str, mode: str) -> None:
    assert DomainConfig.from_env("sqlite:///a.db", {"SQLITE_SYNCHRONOUS": raw}).synchronous == mode


@pytest.mark.parametrize("raw", ["OFF", "EXTRA", "1", "FULL; DROP TABLE alerts"])
def test_bad_sqlite_synchronous_is_refused(raw: str) -> None:
    with pytest.raises(DomainConfigError, match="SQLITE_SYNCHRONOUS"):
        DomainConfig.from_env("sqlite:///a.db", {"SQLITE_SYNCHRONOUS": raw})


def test_escalation_targets() -> None:
    assert parse_targets("") == DEFAULT_TARGETS
    targets = parse_targets(" critical=30 , high=120.5,")
    assert targets == {**DEFAULT_TARGETS, "critical": 30.0, "high": 120.5}
    env = {"ESCALATION_TARGETS": "low=7200"}
    assert DomainConfig.from_env("sqlite:///a.db", env).targets["low"] == 7200.0
    assert DEFAULT_TARGETS["critical"] == 60.0  # parsing never changes the defaults


@pytest.mark.parametrize(
    "raw",
    [
        "urgent=5",
        "critical=abc",
        "critical=0",
        "critical=-5",
        "critical=86401",
        "critical=inf",
        "critical=nan",
        "critical",
        "=5",
    ],
)
def test_bad_escalation_targets_are_refused(raw: str) -> None:
    with pytest.raises(DomainConfigError, match="ESCALATION_TARGETS"):
        parse_targets(raw)
    with pytest.raises(DomainConfigError, match="ESCALATION_TARGETS"):
        DomainConfig.from_env("sqlite:///a.db", {"ESCALATION_TARGETS": raw})


async def test_a_relative_url_opens_a_file_under_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    env = {"SQLITE_SYNCHRONOUS": "NORMAL"}
    config = DomainConfig.from_env("sqlite:///data/nested/alertwire.db", env)
    services = await Services.open(config, ConnectionRegistry(), background=False)
    try:
        alert = await services.alerts.create(alert_input(), "device-7")
        assert isinstance(services.store, SqliteAlertStore)
        db = services.store._db
        assert db is not None
        async with db.execute("PRAGMA synchronous") as cur:
            assert await cur.fetchone() == (1,)  # NORMAL
    finally:
        await services.close()
    assert (tmp_path / "data" / "nested" / "alertwire.db").is_file()

    config = DomainConfig.from_env(f"sqlite:///{tmp_path}/data/nested/alertwire.db", {})
    assert config.database_path.startswith("/")
    services = await Services.open(config, ConnectionRegistry(), background=False)
    try:
        assert (await services.alerts.get(alert.id)).alert == alert  # the same file
    finally:
        await services.close()


async def test_an_in_memory_database_works() -> None:
    config = DomainConfig.from_env("sqlite:///:memory:", {})
    services = await Services.open(config, ConnectionRegistry(), background=False)
    try:
        alert = await services.alerts.create(alert_input(), "device-7")
        assert (await services.alerts.get(alert.id)).alert == alert
        assert await services.store.healthy()
    finally:
        await services.close()


def test_vitals_settings_default() -> None:
    config = DomainConfig.from_env("sqlite:///a.db", {})
    assert config.vitals_retention_s == 86_400.0
    assert config.device_silence_s == 120.0


def test_vitals_settings() -> None:
    env = {"VITALS_RETENTION_HOURS": "0.5", "DEVICE_SILENCE_SECONDS": "1"}
    config = DomainConfig.from_env("sqlite:///a.db", env)
    assert config.vitals_retention_s == 1800.0
    assert config.device_silence_s == 1.0


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("VITALS_RETENTION_HOURS", "0"),
        ("VITALS_RETENTION_HOURS", "-1"),
        ("VITALS_RETENTION_HOURS", "nan"),
        ("VITALS_RETENTION_HOURS", ""),
        ("DEVICE_SILENCE_SECONDS", "0.5"),
        ("DEVICE_SILENCE_SECONDS", "inf"),
        ("DEVICE_SILENCE_SECONDS", "abc"),
    ],
)
def test_bad_vitals_settings_are_refused(name: str, raw: str) -> None:
    with pytest.raises(DomainConfigError, match=name):
        DomainConfig.from_env("sqlite:///a.db", {name: raw})
