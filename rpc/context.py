"""Who is calling, over which connection: what every procedure receives first."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from rpc.errors import ErrorCode, RpcError

ROLES = frozenset({"nurse", "physician", "charge_nurse", "admin", "service"})


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller, read from a verified token."""

    sub: str
    role: str
    hospitals: frozenset[str]
    expires_at: float  # unix seconds
    name: str | None = None
    # For revocation (rpc.revocation): `iat` (None when the token has none) and `jti`.
    issued_at: float | None = None
    jti: str | None = None

    def can_access(self, hospital_id: str) -> bool:
        # admin too only where listed (CONTRACT 5)
        return hospital_id in self.hospitals

    def expired(self, now: float | None = None) -> bool:
        return (time.time() if now is None else now) >= self.expires_at


@dataclass(slots=True)
class Context:
    """Per-call context. `principal` is None only for public procedures called anonymously."""

    principal: Principal | None
    connection_id: str
    request_id: str | int | None = None
    transport: str = "ws"  # "ws" | "http" | "sse"
    # Services shared by procedures (the composition root fills this in).
    services: Any = None
    # Why a presented token was refused, reported instead of a bare "authentication required".
    auth_error: RpcError | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def user(self) -> Principal:
        """The principal, for procedures that are not public (the router checked it is set)."""
        if self.principal is None:
            raise RpcError(ErrorCode.UNAUTHORIZED, "Authentication required")
        return self.principal

    def require_hospital(self, hospital_id: str) -> None:
        """The one place a hospital is checked against the caller's token."""
        if not self.user.can_access(hospital_id):
            raise RpcError(ErrorCode.FORBIDDEN, "Your token does not grant access to this hospital")

    def require_hospitals(self, hospital_ids: Iterable[str]) -> None:
        for hospital_id in hospital_ids:
            self.require_hospital(hospital_id)
