"""The `notifications` router (CONTRACT 10): one's own inbox, and admin broadcasts.

Every procedure but `broadcast` acts on the caller's own inbox only (their `sub`), so there is
no hospital to check; `broadcast` names its hospital (checked by the router) and is for admins.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import cast

from rpc.context import Context
from rpc.errors import invalid_params
from rpc.router import Router
from rpc.stream import Tracked
from schemas.notifications import (
    BroadcastInput,
    BroadcastResult,
    ListNotificationsInput,
    MarkReadInput,
    MarkReadResult,
    NotificationEvent,
    NotificationPage,
    SubscribeNotificationsInput,
)
from services.container import Services
from services.notifications import position_of
from services.store import format_event_id, parse_event_id

router = Router()


def services(ctx: Context) -> Services:
    return cast(Services, ctx.services)


def position(value: str | None, field: str) -> int | None:
    if value is None:
        return None
    parsed = position_of(value) if field == "lastEventId" else parse_event_id(value)
    if parsed is None:
        raise invalid_params({field: "not an id this server issued"})
    return parsed


@router.query(name="list")
async def list_notifications(ctx: Context, input: ListNotificationsInput) -> NotificationPage:
    """A page of one's notifications, newest first (`cursor`: the previous page's
    `nextCursor`), with the unread count."""
    before = position(input.cursor, "cursor")
    items, cursor, unread = await services(ctx).notifications.page(
        ctx.user.sub, input.unread_only, before, input.limit
    )
    return NotificationPage(items=items, next_cursor=cursor, unread=unread)


@router.mutation()
async def mark_read(ctx: Context, input: MarkReadInput) -> MarkReadResult:
    """Mark these of one's notifications read, on every device; others' ids change nothing."""
    ids = [int(i) for i in input.ids]
    changed, unread = await services(ctx).notifications.mark_read(ctx.user.sub, ids)
    return MarkReadResult(ids=[format_event_id(i) for i in changed], unread=unread)


@router.mutation()
async def mark_all_read(ctx: Context) -> MarkReadResult:
    """Mark every one of one's notifications read."""
    changed, unread = await services(ctx).notifications.mark_read(ctx.user.sub, None)
    return MarkReadResult(ids=[format_event_id(i) for i in changed], unread=unread)


@router.subscription()
async def subscribe(
    ctx: Context, input: SubscribeNotificationsInput
) -> AsyncIterator[Tracked[NotificationEvent]]:
    """`notification.new` as they are written, `notification.read` when read on any device,
    `notification.count` at the start and on every change; after `lastEventId`, the ones
    written since come first."""
    after = position(input.last_event_id, "lastEventId")
    return await services(ctx).notifications.stream(ctx.user.sub, after)


@router.mutation(roles={"admin"})
async def broadcast(ctx: Context, input: BroadcastInput) -> BroadcastResult:
    """A notice in the inbox of every staff member of the hospital (those seen so far)."""
    written = await services(ctx).notifications.broadcast(
        input.hospital_id, input.title, input.message, input.severity
    )
    return BroadcastResult(recipients=len(written))
