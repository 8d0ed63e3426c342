"""The `healthcare` router (CONTRACT section 4): thin procedures that check access, call a
service and return a schema.

Roles (CONTRACT 5; README "Roles"): every role reads and subscribes; every role may raise an
alert (devices and integrations as `service`, clinicians by hand); clinicians (`nurse`,
`physician`, `charge_nurse`) and `admin` acknowledge, escalate and resolve; `service`,
`charge_nurse` and `admin` update (reprioritise, reassign). Hospitals: an input's `hospitalId`
is checked by the router before the procedure runs; a procedure that names only an `alertId`
checks the alert's hospital here, before anything changes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import cast

from rpc.context import ROLES, Context
from rpc.router import Router
from rpc.stream import Tracked
from schemas.alerts import (
    AcknowledgeAlertInput,
    AddNoteInput,
    Alert,
    AlertEvent,
    AlertEventPage,
    AlertPage,
    AlertStreamEvent,
    AuditEntry,
    AuditTrail,
    CreateAlertInput,
    EscalateAlertInput,
    GetAlertEventsInput,
    GetAlertInput,
    GetAuditTrailInput,
    GetMetricsInput,
    ListAlertsInput,
    Metrics,
    ResolveAlertInput,
    SubscribeToAlertsInput,
    SubscribeToMetricsInput,
    UpdateAlertInput,
)
from services.alerts import not_found
from services.container import Services
from services.store import AlertRecord, format_event_id

CLINICAL = frozenset({"nurse", "physician", "charge_nurse", "admin"})
CREATORS = ROLES
UPDATERS = frozenset({"service", "charge_nurse", "admin"})

router = Router()


def services(ctx: Context) -> Services:
    return cast(Services, ctx.services)


async def visible_alert(ctx: Context, alert_id: str) -> AlertRecord:
    """The alert, once the caller is known to have its hospital (else FORBIDDEN)."""
    record = await services(ctx).alerts.get(alert_id)
    ctx.require_hospital(record.alert.hospital_id)
    return record


@router.mutation(roles=CREATORS)
async def create_alert(ctx: Context, input: CreateAlertInput) -> Alert:
    """Raise an alert; every subscriber of its hospital hears `alert.created`."""
    return await services(ctx).alerts.create(input, ctx.user.sub)


@router.mutation(roles=CLINICAL)
async def acknowledge_alert(ctx: Context, input: AcknowledgeAlertInput) -> Alert:
    """Take an active alert. The same clinician again gets it unchanged; anyone else CONFLICT."""
    await visible_alert(ctx, input.alert_id)
    return await services(ctx).alerts.acknowledge(input.alert_id, ctx.user.sub, input.note)


@router.mutation(roles=CLINICAL)
async def resolve_alert(ctx: Context, input: ResolveAlertInput) -> Alert:
    """Close an active or acknowledged alert for good."""
    await visible_alert(ctx, input.alert_id)
    return await services(ctx).alerts.resolve(input.alert_id, ctx.user.sub, input.resolution)


@router.mutation(roles=CLINICAL)
async def escalate_alert(ctx: Context, input: EscalateAlertInput) -> Alert:
    """Raise the escalation level; the alert is active again for the next tier."""
    await visible_alert(ctx, input.alert_id)
    return await services(ctx).alerts.escalate(input.alert_id, ctx.user.sub, input.reason)


@router.mutation(roles=UPDATERS)
async def update_alert(ctx: Context, input: UpdateAlertInput) -> Alert:
    """Change priority, title, message or assignee of an open alert."""
    await visible_alert(ctx, input.alert_id)
    return await services(ctx).alerts.update(input, ctx.user.sub)


@router.mutation(roles=CLINICAL)
async def add_note(ctx: Context, input: AddNoteInput) -> AlertEvent:
    """Add a clinical note to the alert's record: an `alert.noted` event in its stream, which
    every subscriber of the hospital hears; returns that event (it carries `note`)."""
    await visible_alert(ctx, input.alert_id)
    return await services(ctx).alerts.add_note(input.alert_id, ctx.user.sub, input.text)


@router.query()
async def get_audit_trail(ctx: Context, input: GetAuditTrailInput) -> AuditTrail:
    """Every retained event of the alert, oldest first: who did what and when, with the note,
    reason or resolution they wrote (null for the others)."""
    await visible_alert(ctx, input.alert_id)
    rows = await services(ctx).audit.trail(input.alert_id)
    entries = [
        AuditEntry(
            event_id=row.event_id,
            type=row.type,  # type: ignore[arg-type]  # written from AlertEventType only
            actor_id=row.actor_id,
            occurred_at=row.occurred_at,
            detail=row.detail,
        )
        for row in rows
    ]
    return AuditTrail(alert_id=input.alert_id, entries=entries)


@router.query()
async def get_alert(ctx: Context, input: GetAlertInput) -> Alert:
    """One alert as it stands now."""
    return (await visible_alert(ctx, input.alert_id)).alert


@router.query()
async def list_alerts(ctx: Context, input: ListAlertsInput) -> AlertPage:
    """A page of the hospital's alerts, newest first, with the position to subscribe from."""
    svc = services(ctx)
    topic = await svc.subscriptions.topic(input.hospital_id)
    newest = topic.newest  # read before the page: a subscriber from here misses nothing
    items, cursor = await svc.store.list_alerts(
        input.hospital_id, input.status, input.limit, input.cursor
    )
    return AlertPage(items=items, next_cursor=cursor, last_event_id=format_event_id(newest))


@router.query()
async def get_metrics(ctx: Context, input: GetMetricsInput) -> Metrics:
    """The hospital's alerting figures now."""
    return await services(ctx).metrics.snapshot(input.hospital_id)


@router.query()
async def get_alert_events(ctx: Context, input: GetAlertEventsInput) -> AlertEventPage:
    """Events after `lastEventId` (the HTTP polling fallback); `stream.reset` when that
    position is gone."""
    return await services(ctx).subscriptions.page(
        input.hospital_id, input.last_event_id, input.limit
    )


@router.subscription()
async def subscribe_to_alerts(
    ctx: Context, input: SubscribeToAlertsInput
) -> AsyncIterator[Tracked[AlertStreamEvent]]:
    """The hospital's alert events (or one alert's) as they commit; after `lastEventId`
    exactly the missed ones first."""
    if input.alert_id is not None:
        record = await visible_alert(ctx, input.alert_id)
        if record.alert.hospital_id != input.hospital_id:
            raise not_found(input.alert_id)  # not an alert of the hospital named
    return await services(ctx).subscriptions.stream(
        input.hospital_id, input.alert_id, input.last_event_id
    )


@router.subscription()
async def subscribe_to_metrics(
    ctx: Context, input: SubscribeToMetricsInput
) -> AsyncIterator[Metrics]:
    """A snapshot at once, then every `intervalMs`, and within 250 ms of a change."""
    stream = services(ctx).metrics.stream(input.hospital_id, input.interval_ms)
    return cast(AsyncIterator[Metrics], stream)
