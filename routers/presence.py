"""The `presence` router (CONTRACT 10): who of the staff is here, and who is looking at an alert.

Roles: every role may watch (a ward's wall display may run as a service account); setting a
status and saying one looks at an alert are for staff, since service accounts are never shown.
Hospitals: `presence.subscribe` names its hospital (checked by the router); the alert-level
procedures check the alert's hospital before anything is said or heard about it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import cast

from routers.healthcare import visible_alert
from rpc.context import ROLES, Context
from rpc.router import Router
from schemas.base import WireModel
from schemas.presence import (
    AlertViewers,
    PresenceEvent,
    PresenceStatus,
    SetPresenceInput,
    SubscribePresenceInput,
    SubscribeToAlertViewersInput,
    ViewingInput,
)
from services.container import Services

STAFF = ROLES - {"service"}

router = Router()


class PresenceState(WireModel):
    """The caller's status and activity now in force."""

    status: PresenceStatus
    activity: str | None


def services(ctx: Context) -> Services:
    return cast(Services, ctx.services)


@router.subscription()
async def subscribe(ctx: Context, input: SubscribePresenceInput) -> AsyncIterator[PresenceEvent]:
    """`presence.snapshot` of the staff connected to the hospital now, then
    `presence.changed` and `presence.left` as they come and go."""
    return services(ctx).presence.stream(input.hospital_id)


@router.mutation(name="set", roles=STAFF)
async def set_presence(ctx: Context, input: SetPresenceInput) -> PresenceState:
    """Set one's status (`online` gives it back to the automatic one) and/or activity (""
    clears it), on every device and node; both are forgotten when one goes offline."""
    status, activity = await services(ctx).presence.set(ctx.user.sub, input.status, input.activity)
    return PresenceState(status=status, activity=activity)


@router.mutation(roles=STAFF)
async def viewing(ctx: Context, input: ViewingInput) -> AlertViewers:
    """Say that one is looking at the alert (repeat within 30 s while one does) and whether
    one is typing about it; returns who is looking now."""
    await visible_alert(ctx, input.alert_id)
    user = ctx.user
    return await services(ctx).presence.viewing.look(
        ctx.connection_id,
        user.sub,
        user.name or user.sub,
        user.role,
        input.alert_id,
        input.typing,
        input.viewing,
    )


@router.subscription()
async def subscribe_to_alert(
    ctx: Context, input: SubscribeToAlertViewersInput
) -> AsyncIterator[AlertViewers]:
    """`alert.viewers` at once, then on every change of who looks at the alert or types."""
    await visible_alert(ctx, input.alert_id)
    return services(ctx).presence.viewing.stream(input.alert_id)
