"""The `system` router: liveness and identity. Stays in the product."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from rpc.context import Context, Principal
from rpc.router import Router
from schemas.system import Identity

router = Router()


def identity_of(principal: Principal) -> Identity:
    expires = datetime.fromtimestamp(principal.expires_at, tz=UTC)
    return Identity(
        sub=principal.sub,
        role=principal.role,  # type: ignore[arg-type]  # verified against ROLES in rpc.auth
        hospitals=sorted(principal.hospitals),
        expires_at=expires.isoformat().replace("+00:00", "Z"),
    )


@router.query(public=True)
async def ping(ctx: Context) -> Literal["pong"]:
    """Liveness of the RPC layer; needs no token."""
    return "pong"


@router.query()
async def whoami(ctx: Context) -> Identity:
    """The caller's identity as the server sees it."""
    return identity_of(ctx.user)
