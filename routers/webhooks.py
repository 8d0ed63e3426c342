"""The `webhooks` router (CONTRACT 9): admins register the endpoints a hospital's alert events
are POSTed to, list and delete them, and read their delivery attempts. Admin only; the
hospital is checked by the router (`hospitalId`) or, for an endpoint named by id, here before
anything is read or changed (unknown: NOT_FOUND; another hospital's: FORBIDDEN)."""

from __future__ import annotations

from typing import cast

from routers.healthcare import services
from rpc.context import Context
from rpc.router import Router
from schemas.integrations import (
    CreateWebhookInput,
    Deleted,
    DeleteWebhookInput,
    Delivery,
    DeliveryStatus,
    ListWebhooksInput,
    Webhook,
    WebhookCreated,
    WebhookDeliveriesInput,
    WebhookEventFilter,
)
from services.integration_store import WebhookRow
from services.lifecycle import iso

ADMIN = frozenset({"admin"})

router = Router()


def webhook(row: WebhookRow) -> Webhook:
    return Webhook(
        webhook_id=row.webhook_id,
        hospital_id=row.hospital_id,
        url=row.url,
        events=[cast(WebhookEventFilter, event) for event in row.events],
        description=row.description,
        enabled=row.enabled,
        created_at=iso(row.created_ts),
    )


async def visible_webhook(ctx: Context, webhook_id: str) -> WebhookRow:
    row = await services(ctx).webhooks.get(webhook_id)
    ctx.require_hospital(row.hospital_id)
    return row


@router.mutation(roles=ADMIN)
async def create(ctx: Context, input: CreateWebhookInput) -> WebhookCreated:
    """Register an endpoint; its signing secret is shown only here. An unsafe URL is invalid
    params (`fieldErrors.url`)."""
    row = await services(ctx).webhooks.create(
        input.hospital_id, input.url, list(input.events), input.description
    )
    return WebhookCreated(**webhook(row).model_dump(), secret=row.secret)


@router.query(roles=ADMIN, name="list")
async def list_webhooks(ctx: Context, input: ListWebhooksInput) -> list[Webhook]:
    """The hospital's endpoints (disabled ones too): never their secrets."""
    return [webhook(row) for row in await services(ctx).webhooks.of_hospital(input.hospital_id)]


@router.mutation(roles=ADMIN)
async def delete(ctx: Context, input: DeleteWebhookInput) -> Deleted:
    """Remove an endpoint and its delivery history; nothing more is sent to it."""
    row = await visible_webhook(ctx, input.webhook_id)
    return Deleted(deleted=await services(ctx).webhooks.delete(row.webhook_id))


@router.query(roles=ADMIN)
async def deliveries(ctx: Context, input: WebhookDeliveriesInput) -> list[Delivery]:
    """The endpoint's delivery attempts, newest first (the next retry first, as `pending`)."""
    row = await visible_webhook(ctx, input.webhook_id)
    attempts = await services(ctx).webhooks.deliveries(row, input.limit)
    return [
        Delivery(
            event_id=a.event_id,
            attempt=a.attempt,
            status=cast(DeliveryStatus, a.status),
            http_status=a.http_status,
            error=a.error,
            at=iso(a.at),
        )
        for a in attempts
    ]
