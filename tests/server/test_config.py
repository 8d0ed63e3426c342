"""server.config: the origin policy, the limits and the key development tools mint with."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from rpc.auth import issue_token, verify_token
from rpc.limits import Limits
from server.config import ConfigError, dev_secret, load, minting_auth
from tests.services.test_private_files import mode

LONG_SECRET = "s" * 40


def env_for(tmp_path: Path, **values: str) -> dict[str, str]:
    return {"ALERTWIRE_DATA_DIR": str(tmp_path / "data"), **values}


def test_allowed_origins_and_localhost_only_in_development(tmp_path: Path) -> None:
    config = load(env_for(tmp_path, ALLOWED_ORIGINS=" https://a.example, https://b.example/ ,"))
    assert config.origins.allowed == {"https://a.example", "https://b.example"}
    assert config.origins.allow_localhost
    config = load(env_for(tmp_path, ALERTWIRE_ENV="production", JWT_SECRET=LONG_SECRET))
    assert config.origins.allowed == frozenset()
    assert not config.origins.allow_localhost
    assert config.origins.permits("http://example.org:3001", "example.org:3001")  # same host
    assert not config.origins.permits("http://localhost:5173", "example.org:3001")


def test_every_limit_is_configurable() -> None:
    limits = Limits.from_env(
        {
            "RATE_LIMIT_PER_10S": "7",
            "MAX_CONNECTIONS_PER_USER": "2",
            "MAX_SUBSCRIPTIONS_PER_CONNECTION": "3",
            "MAX_CONNECTIONS": "4",
            "MAX_MESSAGE_BYTES": "5000",
            "MAX_JSON_DEPTH": "8",
            "MAX_BATCH_SIZE": "9",
            "SEND_QUEUE_FRAMES": "10",
            "SEND_QUEUE_BYTES": "11000",
            "AUTH_TIMEOUT_SECONDS": "2.5",
            "MAX_CALLS_IN_FLIGHT": "12",
        }
    )
    assert limits == Limits(
        rate_per_10s=7,
        max_connections_per_user=2,
        max_subscriptions_per_connection=3,
        max_connections=4,
        max_message_bytes=5000,
        max_json_depth=8,
        max_batch=9,
        send_queue_frames=10,
        send_queue_bytes=11000,
        auth_timeout_s=2.5,
        max_calls_in_flight=12,
    )
    assert Limits.from_env({}) == Limits()


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("MAX_CONNECTIONS", "-1", "non-negative"),
        ("MAX_BATCH_SIZE", "0", "positive"),
        ("MAX_CALLS_IN_FLIGHT", "0", "positive"),
        ("SEND_QUEUE_FRAMES", "lots", "whole number"),
        ("AUTH_TIMEOUT_SECONDS", "0", "between"),
        ("AUTH_TIMEOUT_SECONDS", "soon", "number of seconds"),
    ],
)
def test_bad_limits_say_which_and_why(tmp_path: Path, name: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=f"{name} must be .*{message}"):
        load(env_for(tmp_path, **{name: value}))


def test_minting_uses_jwt_secret_or_the_existing_development_secret(tmp_path: Path) -> None:
    config, source = minting_auth(env_for(tmp_path, JWT_SECRET=LONG_SECRET, JWT_ISSUER="idp"))
    assert (config.key, config.issuer, source) == (LONG_SECRET, "idp", "JWT_SECRET")
    with pytest.raises(ConfigError, match="no development secret"):
        minting_auth(env_for(tmp_path))
    assert not (tmp_path / "data").exists()  # it never makes one up
    secret, path = dev_secret(tmp_path / "data")
    config, source = minting_auth(env_for(tmp_path))
    assert (config.key, source) == (secret, str(path))
    # the server started the same way verifies what was minted with it
    server = load(env_for(tmp_path))
    assert server.auth == config


def test_minting_refuses_production_without_an_explicit_secret(tmp_path: Path) -> None:
    dev_secret(tmp_path / "data")
    with pytest.raises(ConfigError, match="production"):
        minting_auth(env_for(tmp_path, ALERTWIRE_ENV="production"))
    config, _ = minting_auth(env_for(tmp_path, ALERTWIRE_ENV="production", JWT_SECRET=LONG_SECRET))
    assert config.key == LONG_SECRET
    with pytest.raises(ConfigError, match="at least 32 bytes"):
        minting_auth(env_for(tmp_path, JWT_SECRET="short"))
    with pytest.raises(ConfigError, match="public key"):
        minting_auth(env_for(tmp_path, JWT_PUBLIC_KEY="-----BEGIN PUBLIC KEY-----"))


def test_a_minted_token_verifies_against_the_server_config(tmp_path: Path) -> None:
    dev_secret(tmp_path / "data")
    env = env_for(tmp_path, JWT_ISSUER="idp", JWT_AUDIENCE="alertwire")
    config, _ = minting_auth(env)
    token = issue_token(
        config, sub="a", role="admin", hospitals=["h1"], ttl_seconds=60, now=time.time()
    )
    principal = verify_token(token, load(env).auth)
    assert (principal.sub, principal.role, principal.hospitals) == ("a", "admin", frozenset({"h1"}))


def test_the_metrics_token_is_optional_and_must_not_be_guessable(tmp_path: Path) -> None:
    assert load(env_for(tmp_path)).metrics_token is None
    assert load(env_for(tmp_path, METRICS_TOKEN="")).metrics_token is None
    token = "m" * 24
    assert load(env_for(tmp_path, METRICS_TOKEN=token)).metrics_token == token
    with pytest.raises(ConfigError, match="METRICS_TOKEN must be at least 16 characters"):
        load(env_for(tmp_path, METRICS_TOKEN="short"))


def test_latency_metrics_are_on_unless_turned_off(tmp_path: Path) -> None:
    assert load(env_for(tmp_path)).latency_metrics is True
    assert load(env_for(tmp_path, ALERTWIRE_LATENCY_METRICS="off")).latency_metrics is False
    with pytest.raises(ConfigError, match="ALERTWIRE_LATENCY_METRICS must be on or off"):
        load(env_for(tmp_path, ALERTWIRE_LATENCY_METRICS="maybe"))


def test_the_development_secret_and_the_directory_made_for_it_are_private(
    tmp_path: Path, umask: int
) -> None:
    _, path = dev_secret(tmp_path / "srv" / "data")
    assert mode(tmp_path / "srv") == 0o700
    assert mode(tmp_path / "srv" / "data") == 0o700
    assert mode(path) == 0o600


def test_the_default_data_directory_is_tightened_and_a_named_one_keeps_its_mode(
    tmp_path: Path, umask: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("data", "named"):
        (tmp_path / name).mkdir()
        assert mode(tmp_path / name) == 0o755  # as an earlier release made `data`
    load({"JWT_SECRET": LONG_SECRET})
    assert mode(tmp_path / "data") == 0o700
    load({"JWT_SECRET": LONG_SECRET, "ALERTWIRE_DATA_DIR": str(tmp_path / "named")})
    assert mode(tmp_path / "named") == 0o755


def test_production_protects_discovery_and_development_does_not(tmp_path: Path) -> None:
    production = load(env_for(tmp_path, ALERTWIRE_ENV="production", JWT_SECRET=LONG_SECRET))
    assert production.auth.discovery_needs_token
    assert not load(env_for(tmp_path, JWT_SECRET=LONG_SECRET)).auth.discovery_needs_token


PG = "postgresql://postgres@127.0.0.1:5432/alertwire"


def test_one_node_by_default_named_after_host_and_process(tmp_path: Path) -> None:
    config = load(env_for(tmp_path))
    assert config.cluster.redis_url is None
    assert config.cluster.name == "alertwire"
    assert config.cluster.node_id.endswith(f"-{os.getpid()}")


def test_a_cluster_is_named_and_its_nodes_too(tmp_path: Path) -> None:
    config = load(
        env_for(
            tmp_path,
            DATABASE_URL=PG,
            REDIS_URL="redis://127.0.0.1:6379/2",
            ALERTWIRE_CLUSTER="ward-b",
            NODE_ID="node-3",
        )
    )
    assert config.cluster.redis_url == "redis://127.0.0.1:6379/2"
    assert (config.cluster.name, config.cluster.node_id) == ("ward-b", "node-3")


def test_redis_without_postgresql_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"needs a store every node shares.*DATABASE_URL"):
        load(env_for(tmp_path, REDIS_URL="redis://127.0.0.1:6379/0"))


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("REDIS_URL", "http://127.0.0.1:6379", "REDIS_URL must look like"),
        ("REDIS_URL", "redis://", "REDIS_URL must look like"),
        ("ALERTWIRE_CLUSTER", "a:b", "ALERTWIRE_CLUSTER must be"),
        ("ALERTWIRE_CLUSTER", "ward *", "ALERTWIRE_CLUSTER must be"),
        ("ALERTWIRE_CLUSTER", "x" * 65, "ALERTWIRE_CLUSTER must be"),
        ("NODE_ID", "node:1", "NODE_ID must be"),
        ("NODE_ID", "-leading", "NODE_ID must be"),
    ],
)
def test_bad_cluster_settings_say_which(
    tmp_path: Path, name: str, value: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        load(env_for(tmp_path, DATABASE_URL=PG, **{name: value}))
