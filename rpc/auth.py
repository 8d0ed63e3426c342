"""Bearer JWT -> Principal. Pure functions: no I/O, no transport.

Algorithms are pinned by configuration: HS256 with a shared secret by default, RS256/ES256 with a
public key as an option. Never both families at once, so an HS token signed with a public key
(algorithm confusion) and `alg: none` are refused. `exp` and `sub` are required; `iss` and `aud`
are checked when configured; `exp`/`nbf` get a small leeway for clock skew.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jwt

from rpc.context import ROLES, Principal
from rpc.errors import ErrorCode, RpcError

HMAC_ALGORITHMS = ("HS256",)
PUBLIC_KEY_ALGORITHMS = ("RS256", "ES256")
MAX_TOKEN_BYTES = 8192


@dataclass(frozen=True, slots=True)
class AuthConfig:
    key: str | bytes  # HS secret, or a PEM public key for RS256/ES256
    algorithms: tuple[str, ...] = HMAC_ALGORITHMS
    issuer: str | None = None
    audience: str | None = None
    leeway_seconds: float = 5.0
    # `rpc.discover` (the whole API described) answers only a caller with a valid token; the
    # server sets it in production (CONTRACT 5a) and leaves discovery public in development.
    discovery_needs_token: bool = False

    def __post_init__(self) -> None:
        families = {a in HMAC_ALGORITHMS for a in self.algorithms}
        if not self.algorithms or len(families) != 1:
            raise ValueError("configure either HMAC or public-key algorithms, not both")
        unknown = set(self.algorithms) - set(HMAC_ALGORITHMS) - set(PUBLIC_KEY_ALGORITHMS)
        if unknown:
            raise ValueError(f"unsupported JWT algorithms: {sorted(unknown)}")


class TokenError(RpcError):
    """A refused token: UNAUTHORIZED for the client, plus a reason from a small fixed set
    (rpc.metrics.AUTH_FAILURE_REASONS) for the metrics. Neither carries the token."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(ErrorCode.UNAUTHORIZED, message)
        self.reason = reason


def unauthorized(message: str, reason: str) -> TokenError:
    return TokenError(message, reason)


def verify_token(token: str, config: AuthConfig) -> Principal:
    """Verify a token and read its claims. Raises TokenError (UNAUTHORIZED) with a message
    that names what is wrong and never echoes the token."""
    if not isinstance(token, str) or not token:
        raise unauthorized("Missing token", "missing")
    if len(token) > MAX_TOKEN_BYTES:
        raise unauthorized("Token too large", "too_large")
    try:
        claims = jwt.decode(
            token,
            config.key,
            algorithms=list(config.algorithms),
            issuer=config.issuer,
            audience=config.audience,
            leeway=config.leeway_seconds,
            options={"require": ["exp", "sub"]},
        )
    except jwt.ExpiredSignatureError:
        raise unauthorized("Token expired", "expired") from None
    except jwt.ImmatureSignatureError:
        raise unauthorized("Token not yet valid", "not_yet_valid") from None
    except jwt.InvalidIssuerError:
        raise unauthorized("Token issuer not accepted", "issuer") from None
    except jwt.InvalidAudienceError:
        raise unauthorized("Token audience not accepted", "audience") from None
    except jwt.MissingRequiredClaimError as exc:
        raise unauthorized(
            f"Token lacks the required claim '{exc.claim}'", "missing_claim"
        ) from None
    except jwt.InvalidAlgorithmError:
        raise unauthorized("Token algorithm not accepted", "algorithm") from None
    except jwt.InvalidSignatureError:
        raise unauthorized("Token signature invalid", "signature") from None
    except jwt.PyJWTError:
        raise unauthorized("Token malformed", "malformed") from None
    return principal_from_claims(claims)


def principal_from_claims(claims: Mapping[str, Any]) -> Principal:
    sub = claims.get("sub")
    role = claims.get("role")
    hospitals = claims.get("hospitals", [])
    exp = claims.get("exp")
    name = claims.get("name")
    if not isinstance(sub, str) or not sub or len(sub) > 256:
        raise unauthorized("Token claim 'sub' must be a non-empty string", "bad_claim")
    if role not in ROLES:
        raise unauthorized("Token claim 'role' is missing or not a known role", "bad_claim")
    if not isinstance(hospitals, list) or not all(
        isinstance(h, str) and 0 < len(h) <= 64 for h in hospitals
    ):
        raise unauthorized("Token claim 'hospitals' must be a list of hospital ids", "bad_claim")
    if not isinstance(exp, int | float) or isinstance(exp, bool):
        raise unauthorized("Token claim 'exp' must be a number", "bad_claim")
    if name is not None and not isinstance(name, str):
        name = None
    iat = claims.get("iat")  # PyJWT has checked that a present `iat` is a number
    issued_at = float(iat) if isinstance(iat, int | float) and not isinstance(iat, bool) else None
    jti = claims.get("jti")
    return Principal(
        sub=sub,
        role=str(role),
        hospitals=frozenset(hospitals),
        expires_at=float(exp),
        name=name,
        issued_at=issued_at,
        jti=jti if isinstance(jti, str) and 0 < len(jti) <= 256 else None,
    )


def bearer_token(header: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, or None."""
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def issue_token(
    config: AuthConfig,
    *,
    sub: str,
    role: str,
    hospitals: list[str],
    ttl_seconds: float,
    now: float,
    name: str | None = None,
    private_key: str | bytes | None = None,
    jti: str | None = None,
) -> str:
    """Mint a token (development tools and tests). Public-key setups need `private_key`."""
    claims: dict[str, Any] = {
        "sub": sub,
        "role": role,
        "hospitals": hospitals,
        "iat": int(now),
        "exp": int(now + ttl_seconds),
    }
    if name:
        claims["name"] = name
    if jti:
        claims["jti"] = jti
    if config.issuer:
        claims["iss"] = config.issuer
    if config.audience:
        claims["aud"] = config.audience
    key = private_key if private_key is not None else config.key
    return jwt.encode(claims, key, algorithm=config.algorithms[0])
