"""The `system` router: liveness and identity. Stays in the product."""

from __future__ import annotations

from typing import Literal

from rpc.context import Context
from rpc.identity import identity_of
from rpc.router import Router
from schemas.system import Identity

router = Router()


@router.query(public=True)
async def ping(ctx: Context) -> Literal["pong"]:
    """Liveness of the RPC layer; needs no token."""
    return "pong"


@router.query()
async def whoami(ctx: Context) -> Identity:
    """The caller's identity as the server sees it."""
    return identity_of(ctx.user)
