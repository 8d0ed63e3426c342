"""WEBHOOK_ALLOW_PRIVATE and WEBHOOK_TIMEOUT_SECONDS (docs/configuration.md)."""

from __future__ import annotations

import pytest

from services.config import DomainConfig, DomainConfigError

URL = "sqlite:///a.db"


def test_defaults_are_strict() -> None:
    config = DomainConfig.from_env(URL, {})
    assert config.webhook_allow_private is False
    assert config.webhook_timeout_s == 10.0


def test_only_1_allows_private_targets() -> None:
    assert DomainConfig.from_env(URL, {"WEBHOOK_ALLOW_PRIVATE": "1"}).webhook_allow_private
    for value in ("0", "true", "yes", ""):
        config = DomainConfig.from_env(URL, {"WEBHOOK_ALLOW_PRIVATE": value})
        assert config.webhook_allow_private is False, value


@pytest.mark.parametrize("value", ["0", "-1", "61", "soon"])
def test_a_bad_timeout_is_refused(value: str) -> None:
    with pytest.raises(DomainConfigError, match="WEBHOOK_TIMEOUT_SECONDS"):
        DomainConfig.from_env(URL, {"WEBHOOK_TIMEOUT_SECONDS": value})


def test_a_timeout_is_read() -> None:
    assert DomainConfig.from_env(URL, {"WEBHOOK_TIMEOUT_SECONDS": "2.5"}).webhook_timeout_s == 2.5
