"""Server configuration from the environment (CONTRACT section 1)."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from rpc.auth import PUBLIC_KEY_ALGORITHMS, AuthConfig
from rpc.limits import Limits
from rpc.transport_aiohttp import OriginPolicy
from services.config import ClusterConfig, DomainConfig, DomainConfigError
from services.private_files import make_private_dir, tighten_dir

DEV_SECRET_FILE = "dev_jwt_secret"  # noqa: S105 - a file name, not a secret


class ConfigError(Exception):
    """The environment does not describe a server that can start; the message says why."""


@dataclass(frozen=True)
class ServerConfig:
    host: str
    port: int
    data_dir: Path
    database_url: str
    production: bool
    auth: AuthConfig
    secret_source: str  # "JWT_SECRET", "public key", or the dev secret's path
    origins: OriginPolicy
    limits: Limits = field(default_factory=Limits)
    domain: DomainConfig = field(default_factory=DomainConfig)
    metrics_token: str | None = None  # when set, GET /metrics wants it as a Bearer token
    # ALERTWIRE_LATENCY_METRICS=off: no per-call, per-commit or per-event histograms (to
    # measure what observing costs); every counter and gauge stays.
    latency_metrics: bool = True
    cluster: ClusterConfig = field(default_factory=ClusterConfig)

    @property
    def development(self) -> bool:
        return not self.production


def _port(raw: str | None) -> int:
    try:
        port = int(raw) if raw else 3001
    except ValueError:
        raise ConfigError("WEBSOCKET_PORT must be a number") from None
    if not 0 <= port <= 65535:
        raise ConfigError("WEBSOCKET_PORT must be between 0 and 65535")
    return port


def dev_secret(data_dir: Path) -> tuple[str, Path]:
    """The development secret: generated once, kept under data/ (0700 when made here) with
    mode 0600."""
    path = data_dir / DEV_SECRET_FILE
    make_private_dir(data_dir)
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(48))
    os.chmod(path, 0o600)
    return path.read_text().strip(), path


def _auth(env: Mapping[str, str], data_dir: Path, production: bool) -> tuple[AuthConfig, str]:
    issuer = env.get("JWT_ISSUER") or None
    audience = env.get("JWT_AUDIENCE") or None
    public_key = env.get("JWT_PUBLIC_KEY")
    key_file = env.get("JWT_PUBLIC_KEY_FILE")
    if key_file:
        public_key = Path(key_file).read_text()
    if public_key:
        algorithm = env.get("JWT_ALGORITHM", "RS256")
        if algorithm not in PUBLIC_KEY_ALGORITHMS:
            raise ConfigError(f"JWT_ALGORITHM must be one of {', '.join(PUBLIC_KEY_ALGORITHMS)}")
        return AuthConfig(public_key, (algorithm,), issuer, audience), "public key"
    secret = env.get("JWT_SECRET")
    if secret:
        return _hs256(secret, issuer, audience), "JWT_SECRET"
    if production:
        raise ConfigError(
            "JWT_SECRET (or JWT_PUBLIC_KEY) is required when ALERTWIRE_ENV=production; "
            "refusing to start with a generated development secret"
        )
    secret, path = dev_secret(data_dir)
    return AuthConfig(secret, ("HS256",), issuer, audience), str(path)


def _hs256(secret: str, issuer: str | None, audience: str | None) -> AuthConfig:
    if len(secret.encode()) < 32:
        raise ConfigError("JWT_SECRET must be at least 32 bytes for HS256")
    return AuthConfig(secret, ("HS256",), issuer, audience)


def _production(env: Mapping[str, str]) -> bool:
    return env.get("ALERTWIRE_ENV", "development").lower() == "production"


def _data_dir(env: Mapping[str, str]) -> Path:
    return Path(env.get("ALERTWIRE_DATA_DIR", "data"))


def minting_auth(env: Mapping[str, str] | None = None) -> tuple[AuthConfig, str]:
    """The key development tools sign tokens with, the one `load` verifies with: JWT_SECRET,
    or (outside production) the development secret the server keeps in its data directory.

    Never generates a secret: a token signed with a new one would be refused by a server that
    already has its own. Returns the config and where the key came from; raises ConfigError.
    """
    env = os.environ if env is None else env
    issuer = env.get("JWT_ISSUER") or None
    audience = env.get("JWT_AUDIENCE") or None
    if env.get("JWT_PUBLIC_KEY") or env.get("JWT_PUBLIC_KEY_FILE"):
        raise ConfigError(
            "the server verifies tokens with a public key (JWT_PUBLIC_KEY); "
            "mint them where the private key is"
        )
    secret = env.get("JWT_SECRET")
    if secret:
        return _hs256(secret, issuer, audience), "JWT_SECRET"
    if _production(env):
        raise ConfigError(
            "ALERTWIRE_ENV=production: set JWT_SECRET explicitly to mint a token; "
            "development secrets are not used in production"
        )
    path = _data_dir(env) / DEV_SECRET_FILE
    if not path.is_file():
        raise ConfigError(
            f"no JWT_SECRET and no development secret at {path}: start the server once in "
            "development mode from this directory (it creates one), or set JWT_SECRET"
        )
    return AuthConfig(path.read_text().strip(), ("HS256",), issuer, audience), str(path)


def _origins(env: Mapping[str, str], production: bool) -> OriginPolicy:
    raw = env.get("ALLOWED_ORIGINS", "")
    allowed = frozenset(o.strip().rstrip("/") for o in raw.split(",") if o.strip())
    return OriginPolicy(allowed=allowed, allow_localhost=not production)


def load(env: Mapping[str, str] | None = None) -> ServerConfig:
    env = os.environ if env is None else env
    production = _production(env)
    data_dir = _data_dir(env)
    if "ALERTWIRE_DATA_DIR" not in env:
        # The default directory is the server's own: earlier releases made it with the
        # umask's mode. A directory the operator names keeps its mode (services.private_files).
        tighten_dir(data_dir)
    auth, source = _auth(env, data_dir, production)
    auth = replace(auth, discovery_needs_token=production)
    try:
        limits = Limits.from_env(env)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    database_url = env.get("DATABASE_URL", f"sqlite:///{data_dir}/alertwire.db")
    try:
        domain = DomainConfig.from_env(database_url, env)
    except DomainConfigError as exc:
        raise ConfigError(str(exc)) from None
    cluster = _cluster(env, domain)
    metrics_token = env.get("METRICS_TOKEN") or None
    latency = env.get("ALERTWIRE_LATENCY_METRICS", "on").strip().lower()
    if latency not in ("on", "off"):
        raise ConfigError("ALERTWIRE_LATENCY_METRICS must be on or off")
    if metrics_token is not None and len(metrics_token) < 16:
        raise ConfigError("METRICS_TOKEN must be at least 16 characters")
    return ServerConfig(
        host=env.get("HOST", "127.0.0.1"),
        port=_port(env.get("WEBSOCKET_PORT")),
        data_dir=data_dir,
        database_url=database_url,
        production=production,
        auth=auth,
        secret_source=source,
        origins=_origins(env, production),
        limits=limits,
        domain=domain,
        metrics_token=metrics_token,
        latency_metrics=latency == "on",
        cluster=cluster,
    )


def _cluster(env: Mapping[str, str], domain: DomainConfig) -> ClusterConfig:
    try:
        cluster = ClusterConfig.from_env(env)
    except DomainConfigError as exc:
        raise ConfigError(str(exc)) from None
    if cluster.redis_url is not None and domain.postgres_url is None:
        raise ConfigError(
            "REDIS_URL makes this node one of a cluster, and a cluster needs a store every "
            "node shares: set DATABASE_URL=postgresql://... (or unset REDIS_URL for one node)"
        )
    return cluster
