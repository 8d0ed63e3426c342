"""The `admin` router (CONTRACT 11): stats of every node, disconnecting a user and revoking
tokens. These act on users and connections, not on hospital data, so any `admin` may use them
(a hospital filter of `stats` is still checked against the admin's token); each use is logged
with the admin's sub and counted in /metrics (services/admin.py)."""

from __future__ import annotations

from typing import cast

from rpc.context import Context
from rpc.router import Router
from schemas.admin import (
    AdminStats,
    AdminStatsInput,
    Disconnected,
    DisconnectInput,
    NodeStats,
    Revoked,
    RevokeTokensInput,
    StatsTotals,
)
from services.container import Services

ADMIN = frozenset({"admin"})

router = Router()


def services(ctx: Context) -> Services:
    return cast(Services, ctx.services)


@router.query(roles=ADMIN)
async def stats(ctx: Context, input: AdminStatsInput) -> AdminStats:
    """Connections, users and subscriptions by kind on every node, with totals."""
    found = await services(ctx).admin.stats(ctx.user.sub, input.hospital_id)
    return AdminStats(
        nodes=[
            NodeStats(
                node=n.node,
                connections=n.connections,
                users=n.users,
                subscriptions=n.subscriptions,
            )
            for n in found.nodes
        ],
        totals=StatsTotals(
            connections=found.connections, users=found.users, subscriptions=found.subscriptions
        ),
    )


@router.mutation(roles=ADMIN)
async def disconnect(ctx: Context, input: DisconnectInput) -> Disconnected:
    """Close every connection of the user on every node (4001); they may sign in again."""
    closed = await services(ctx).admin.disconnect(ctx.user.sub, input.sub)
    return Disconnected(closed=closed)


@router.mutation(roles=ADMIN)
async def revoke_tokens(ctx: Context, input: RevokeTokensInput) -> Revoked:
    """Refuse a user's tokens issued before a moment (default now), or one token by `jti`,
    on every node from now on (within a second); live connections using them close (4001)."""
    admin = services(ctx).admin
    if input.jti is not None:
        await admin.revoke_token(ctx.user.sub, input.jti)
    else:
        assert input.sub is not None  # the schema requires one of the two
        await admin.revoke_user(ctx.user.sub, input.sub, input.issued_before_ts())
    return Revoked()
