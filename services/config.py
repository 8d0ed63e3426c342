"""The alerting domain's settings, read from the environment once.

| variable | default | meaning |
| `DATABASE_URL` | `sqlite:///data/alertwire.db` | `sqlite:///rel.db`, `sqlite:////abs.db`, |
|                |                               | or `postgresql://user@host:port/db` (asyncpg)  |
| `ALERTWIRE_RETENTION_DAYS` | `7` | how long the event log keeps events (a fraction is fine) |
| `ESCALATION_TARGETS` | `critical=60,high=300,medium=900,low=3600` | seconds to acknowledge |
| `SQLITE_SYNCHRONOUS` | `FULL` | `FULL` (each commit survives power loss) or `NORMAL` |
| `REDIS_URL` | unset (one node) | `redis://host:port/db`: the cluster's shared state |
| `ALERTWIRE_CLUSTER` | `alertwire` | prefix of every Redis key and channel (`<cluster>:`) |
| `NODE_ID` | `<hostname>-<pid>` | this node's name in `/health`, logs and Redis |
| `VITALS_RETENTION_HOURS` | `24` | how long readings are kept (a fraction is fine) |
| `DEVICE_SILENCE_SECONDS` | `120` | a device assigned to a patient and silent this long |
|                          |       | raises `device.offline` (at least 1) |
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

from rpc.cluster_memory import default_node_id
from schemas.alerts import Priority

PRIORITIES: tuple[Priority, ...] = ("critical", "high", "medium", "low")
DEFAULT_TARGETS: dict[Priority, float] = {
    "critical": 60.0,
    "high": 300.0,
    "medium": 900.0,
    "low": 3600.0,
}


POSTGRES_SCHEMES = ("postgresql", "postgres")
REDIS_SCHEMES = ("redis", "rediss", "unix")
# Names that go into Redis keys: no ":" (the key separator), spaces or glob characters.
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


class DomainConfigError(ValueError):
    pass


def sqlite_path(url: str) -> str:
    """`sqlite:///relative.db` -> `relative.db`; `sqlite:////abs.db` -> `/abs.db`."""
    prefix = "sqlite:///"
    path = url[len(prefix) :]
    # A path ending in "/" names a directory (sqlite:////), not a database file.
    if not url.startswith(prefix) or not path or path.endswith("/"):
        raise DomainConfigError(
            "DATABASE_URL must look like sqlite:///relative/path.db, sqlite:////absolute/path.db"
            " or postgresql://user@host:port/database"
        )
    return path


def postgres_url(url: str) -> str | None:
    """The URL itself when it names PostgreSQL (asyncpg reads it as is), else None."""
    scheme, sep, rest = url.partition("://")
    if scheme not in POSTGRES_SCHEMES or not sep:
        return None
    if not rest.strip("/"):
        raise DomainConfigError("DATABASE_URL must name a PostgreSQL host: postgresql://host/db")
    return url


def without_password(url: str) -> str:
    """The URL as it may be shown (banner, logs): a password in it is replaced by `***`."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


def parse_targets(raw: str) -> dict[Priority, float]:
    targets = dict(DEFAULT_TARGETS)
    for part in filter(None, (p.strip() for p in raw.split(","))):
        name, _, value = part.partition("=")
        name = name.strip()
        if name not in PRIORITIES:
            raise DomainConfigError(f"ESCALATION_TARGETS: unknown priority {name!r}")
        try:
            seconds = float(value)
        except ValueError:
            raise DomainConfigError(
                f"ESCALATION_TARGETS: {name} needs a number of seconds"
            ) from None
        if not 0 < seconds <= 86_400:
            raise DomainConfigError(f"ESCALATION_TARGETS: {name} must be in (0, 86400] seconds")
        targets[name] = seconds
    return targets


@dataclass(frozen=True)
class DomainConfig:
    database_path: str = ":memory:"
    # When set, the store is PostgreSQL at this URL and `database_path` is not used.
    postgres_url: str | None = None
    retention_s: float = 7 * 86_400.0
    targets: dict[Priority, float] = field(default_factory=lambda: dict(DEFAULT_TARGETS))
    synchronous: str = "FULL"
    prune_interval_s: float = 3600.0
    # Outbound webhooks (CONTRACT 9): private, loopback and link-local targets, and http, are
    # allowed only with WEBHOOK_ALLOW_PRIVATE=1 (development and tests).
    webhook_allow_private: bool = False
    webhook_timeout_s: float = 10.0
    # Presence (CONTRACT 10): a connected user is `away` after this long without a call.
    presence_away_s: float = 300.0
    vitals_retention_s: float = 24 * 3600.0
    device_silence_s: float = 120.0

    @classmethod
    def from_env(cls, database_url: str, env: Mapping[str, str] | None = None) -> DomainConfig:
        env = os.environ if env is None else env
        try:
            days = float(env.get("ALERTWIRE_RETENTION_DAYS", "7"))
        except ValueError:
            raise DomainConfigError("ALERTWIRE_RETENTION_DAYS must be a number") from None
        if not days > 0:
            raise DomainConfigError("ALERTWIRE_RETENTION_DAYS must be positive")
        synchronous = env.get("SQLITE_SYNCHRONOUS", "FULL").upper()
        if synchronous not in ("FULL", "NORMAL"):
            raise DomainConfigError("SQLITE_SYNCHRONOUS must be FULL or NORMAL")
        try:
            away = float(env.get("PRESENCE_AWAY_SECONDS", "300"))
        except ValueError:
            raise DomainConfigError("PRESENCE_AWAY_SECONDS must be a number") from None
        if not away > 0:
            raise DomainConfigError("PRESENCE_AWAY_SECONDS must be positive")
        postgres = postgres_url(database_url)
        try:
            webhook_timeout = float(env.get("WEBHOOK_TIMEOUT_SECONDS", "10"))
        except ValueError:
            raise DomainConfigError("WEBHOOK_TIMEOUT_SECONDS must be a number") from None
        if not 0 < webhook_timeout <= 60:
            raise DomainConfigError("WEBHOOK_TIMEOUT_SECONDS must be in (0, 60]")
        vitals_hours = _number(env, "VITALS_RETENTION_HOURS", 24.0, minimum=0.0, open_min=True)
        silence_s = _number(env, "DEVICE_SILENCE_SECONDS", 120.0, minimum=1.0)
        return cls(
            presence_away_s=away,
            database_path=":memory:" if postgres else sqlite_path(database_url),
            postgres_url=postgres,
            retention_s=days * 86_400.0,
            targets=parse_targets(env.get("ESCALATION_TARGETS", "")),
            synchronous=synchronous,
            webhook_allow_private=env.get("WEBHOOK_ALLOW_PRIVATE", "") == "1",
            webhook_timeout_s=webhook_timeout,
            vitals_retention_s=vitals_hours * 3600.0,
            device_silence_s=silence_s,
        )


def _number(
    env: Mapping[str, str], name: str, default: float, minimum: float, open_min: bool = False
) -> float:
    """A numeric setting: above `minimum` (or at least it, unless `open_min`)."""
    raw = env.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise DomainConfigError(f"{name} must be a number") from None
    too_small = value <= minimum if open_min else value < minimum
    if too_small or value != value or value == float("inf"):
        bound = "greater than" if open_min else "at least"
        raise DomainConfigError(f"{name} must be a finite number {bound} {minimum:g}")
    return value


@dataclass(frozen=True)
class ClusterConfig:
    """REDIS_URL (None: one node, cluster state in memory), ALERTWIRE_CLUSTER and NODE_ID."""

    redis_url: str | None = None
    name: str = "alertwire"
    node_id: str = field(default_factory=lambda: _safe_name(default_node_id()))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ClusterConfig:
        env = os.environ if env is None else env
        redis_url = env.get("REDIS_URL") or None
        if redis_url is not None:
            scheme, sep, rest = redis_url.partition("://")
            if scheme not in REDIS_SCHEMES or not sep or not rest.strip("/"):
                raise DomainConfigError(
                    "REDIS_URL must look like redis://host:port/db (or rediss://, unix://)"
                )
        name = env.get("ALERTWIRE_CLUSTER") or "alertwire"
        if not NAME.fullmatch(name):
            raise DomainConfigError(
                "ALERTWIRE_CLUSTER must be 1-64 letters, digits, '.', '_' or '-' "
                "(it prefixes every Redis key)"
            )
        node_id = env.get("NODE_ID") or _safe_name(default_node_id())
        if not NAME.fullmatch(node_id):
            raise DomainConfigError("NODE_ID must be 1-64 letters, digits, '.', '_' or '-'")
        return cls(redis_url=redis_url, name=name, node_id=node_id)


def _safe_name(raw: str) -> str:
    """A host name as a NODE_ID: characters a key must not hold replaced, at most 64."""
    return re.sub(r"[^A-Za-z0-9_.-]", "-", raw)[-64:].lstrip("-_.") or "node"
