"""A principal as the wire shows it (`system.whoami`, `auth.authenticate`)."""

from __future__ import annotations

from datetime import UTC, datetime

from rpc.context import Principal
from schemas.system import Identity


def identity_of(principal: Principal) -> Identity:
    expires = datetime.fromtimestamp(principal.expires_at, tz=UTC)
    return Identity(
        sub=principal.sub,
        role=principal.role,  # type: ignore[arg-type]  # checked against ROLES in rpc.auth
        hospitals=sorted(principal.hospitals),
        expires_at=expires.isoformat().replace("+00:00", "Z"),
    )
