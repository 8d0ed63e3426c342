"""The alerting domain's settings, read from the environment once.

| variable | default | meaning |
| `DATABASE_URL` | `sqlite:///data/alertwire.db` | `sqlite:///rel.db`, `sqlite:////abs.db` |
| `ALERTWIRE_RETENTION_DAYS` | `7` | how long the event log keeps events (a fraction is fine) |
| `ESCALATION_TARGETS` | `critical=60,high=300,medium=900,low=3600` | seconds to acknowledge |
| `SQLITE_SYNCHRONOUS` | `FULL` | `FULL` (each commit survives power loss) or `NORMAL` |
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from schemas.alerts import Priority

PRIORITIES: tuple[Priority, ...] = ("critical", "high", "medium", "low")
DEFAULT_TARGETS: dict[Priority, float] = {
    "critical": 60.0,
    "high": 300.0,
    "medium": 900.0,
    "low": 3600.0,
}


class DomainConfigError(ValueError):
    pass


def sqlite_path(url: str) -> str:
    """`sqlite:///relative.db` -> `relative.db`; `sqlite:////abs.db` -> `/abs.db`."""
    prefix = "sqlite:///"
    path = url[len(prefix) :]
    # A path ending in "/" names a directory (sqlite:////), not a database file.
    if not url.startswith(prefix) or not path or path.endswith("/"):
        raise DomainConfigError(
            "DATABASE_URL must look like sqlite:///relative/path.db or sqlite:////absolute/path.db"
        )
    return path


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
    retention_s: float = 7 * 86_400.0
    targets: dict[Priority, float] = field(default_factory=lambda: dict(DEFAULT_TARGETS))
    synchronous: str = "FULL"
    prune_interval_s: float = 3600.0

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
        return cls(
            database_path=sqlite_path(database_url),
            retention_s=days * 86_400.0,
            targets=parse_targets(env.get("ESCALATION_TARGETS", "")),
            synchronous=synchronous,
        )
