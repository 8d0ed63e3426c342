"""Schemas of the `healthcare` router (CONTRACT section 4): alerts, their events and metrics.

Inputs are strict (`InputModel`): unknown fields, wrong types, empty or oversized strings,
control and bidirectional-override characters (schemas.base) and bad enum values are invalid
params. Times are ISO 8601 UTC strings ending in `Z`.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field
from typing_extensions import TypeAliasType

from schemas.base import EventId, FreeText, HospitalId, InputModel, PlainText, WireModel

Priority = Literal["low", "medium", "high", "critical"]
AlertStatus = Literal["active", "acknowledged", "resolved"]
AlertEventType = Literal[
    "alert.created",
    "alert.acknowledged",
    "alert.resolved",
    "alert.escalated",
    "alert.updated",
    "alert.noted",
]

AlertId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
AlertType = Annotated[
    str,
    Field(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9_.:-]+$",
        description='What happened, e.g. "call_button", "fall" or "vitals.high_bp".',
    ),
]
Title = Annotated[PlainText, Field(min_length=1, max_length=200)]
Text = Annotated[FreeText, Field(min_length=1, max_length=2000)]
ShortText = Annotated[PlainText, Field(min_length=1, max_length=128)]
StaffId = Annotated[PlainText, Field(min_length=1, max_length=256)]
IdempotencyKey = Annotated[
    PlainText,
    Field(
        min_length=1,
        max_length=128,
        description=(
            "Makes a retry safe: a repeat with the same key for the same hospital within 24 h "
            "returns the alert the first call created and creates nothing."
        ),
    ),
]


class Alert(WireModel):
    """A clinical alert and where it stands in its lifecycle."""

    id: str
    hospital_id: str
    patient_id: str | None
    location: str | None
    type: str
    priority: Priority
    status: AlertStatus
    escalation_level: int = Field(ge=0)
    title: str
    message: str | None
    assigned_to: str | None
    created_at: str
    created_by: str
    acknowledged_at: str | None
    acknowledged_by: str | None
    resolved_at: str | None
    resolved_by: str | None
    updated_at: str
    version: int = Field(ge=1, description="Increases by one with every change.")


class AlertEvent(WireModel):
    """One committed change of an alert, with the alert as it is after the change."""

    id: str = Field(description="The event id: opaque, increasing per hospital.")
    type: AlertEventType
    hospital_id: str
    alert_id: str
    alert: Alert
    actor_id: str = Field(description='Who made the change ("system" for automatic escalation).')
    occurred_at: str
    note: str | None = Field(
        default=None,
        description="The note's text on an `alert.noted` event; null on the others.",
    )


class StreamReset(WireModel):
    """The requested position is no longer in the retained history: refetch, then go on live.

    `id` is the newest event id; the stream continues after it."""

    id: str
    type: Literal["stream.reset"]
    hospital_id: str
    reason: str


# A named alias, so that the generated TypeScript has `AlertStreamEvent` too.
AlertStreamEvent = TypeAliasType(
    "AlertStreamEvent", Annotated[AlertEvent | StreamReset, Field(discriminator="type")]
)


class Metrics(WireModel):
    """A hospital's alerting figures at `generatedAt`."""

    hospital_id: str
    active_alerts: int = Field(ge=0, description="Alerts not yet resolved.")
    critical_alerts: int = Field(
        ge=0, description="Of the active alerts, those of priority critical."
    )
    staff_online: int = Field(
        ge=0, description="Distinct staff with a live authenticated connection to this hospital."
    )
    response_rate: float | None = Field(
        ge=0,
        le=1,
        description=(
            "Share of the last 24 h's due alerts answered within their priority's target; "
            "null when no alert is due."
        ),
    )
    average_response_time_seconds: float | None = Field(
        description="Mean time from creation to first response over the last 24 h; null when none."
    )
    generated_at: str


# --- inputs -------------------------------------------------------------------------------------


class CreateAlertInput(InputModel):
    """Raise an alert (a device, an integration, or a clinician)."""

    hospital_id: HospitalId
    type: AlertType
    priority: Priority
    title: Title
    message: Text | None = None
    patient_id: ShortText | None = None
    location: ShortText | None = None
    idempotency_key: IdempotencyKey | None = None


class AcknowledgeAlertInput(InputModel):
    """Take responsibility for an active alert."""

    alert_id: AlertId
    note: Text | None = None


class ResolveAlertInput(InputModel):
    """Close an alert for good."""

    alert_id: AlertId
    resolution: Text | None = None


class EscalateAlertInput(InputModel):
    """Hand an alert to the next tier: its escalation level rises and it is active again."""

    alert_id: AlertId
    reason: Text | None = None


class UpdateAlertInput(InputModel):
    """Change an open alert's details; the fields left out stay as they are."""

    alert_id: AlertId
    priority: Priority | None = None
    title: Title | None = None
    message: Text | None = None
    assigned_to: StaffId | None = None


class AddNoteInput(InputModel):
    """Add a clinical note to an alert's record (an `alert.noted` event in its stream)."""

    alert_id: AlertId
    text: Text


class GetAuditTrailInput(InputModel):
    alert_id: AlertId


class AuditEntry(WireModel):
    """One event of an alert's history: who did what, when, and what they wrote."""

    event_id: str
    type: AlertEventType
    actor_id: str
    occurred_at: str
    detail: str | None = Field(
        description="The note, reason or resolution written with the change; null otherwise."
    )


class AuditTrail(WireModel):
    """Every retained event of an alert, oldest first."""

    alert_id: str
    entries: list[AuditEntry]


class GetAlertInput(InputModel):
    alert_id: AlertId


class ListAlertsInput(InputModel):
    """A page of a hospital's alerts, newest first."""

    hospital_id: HospitalId
    status: AlertStatus | None = None
    limit: Annotated[int, Field(ge=1, le=500)] = 50
    cursor: Annotated[PlainText, Field(min_length=1, max_length=64)] | None = None


class AlertPage(WireModel):
    """`lastEventId` is the hospital's newest event position when the page was read (all
    zeros before the first event): subscribe from it to continue from exactly this snapshot."""

    items: list[Alert]
    next_cursor: str | None
    last_event_id: str


class GetMetricsInput(InputModel):
    hospital_id: HospitalId


class GetAlertEventsInput(InputModel):
    """Events after `lastEventId` (the polling fallback); without it, the newest events."""

    hospital_id: HospitalId
    last_event_id: EventId | None = None
    limit: Annotated[int, Field(ge=1, le=1000)] = 100


class AlertEventPage(WireModel):
    """`lastEventId`: where the next call continues from."""

    events: list[AlertStreamEvent]
    last_event_id: str


class SubscribeToAlertsInput(InputModel):
    """A hospital's alert events (or one alert's), live; after `lastEventId` when given."""

    hospital_id: HospitalId
    alert_id: AlertId | None = None
    last_event_id: EventId | None = None


class SubscribeToMetricsInput(InputModel):
    """A metrics snapshot at once, then every `intervalMs` and within 250 ms of a change."""

    hospital_id: HospitalId
    interval_ms: Annotated[int, Field(ge=250, le=60_000)] = 5000
