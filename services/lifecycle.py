"""The alert lifecycle as pure functions: (current alert, action) -> (new alert, event type).

CONTRACT section 4's table:

| action      | allowed from          | result                                                   |
| acknowledge | active                | acknowledged; the same actor again gets it unchanged     |
| escalate    | active, acknowledged  | escalationLevel + 1, status active (next tier acks)      |
| update      | active, acknowledged  | fields changed, status unchanged                         |
| resolve     | active, acknowledged  | resolved, final                                          |
| anything    | resolved              | CONFLICT with the current status in error.data           |
| note        | any status            | unchanged but for `version` and `updatedAt` (the record) |

A change returns the alert with `version` + 1 and `updatedAt` set; `None` means "no change"
(an idempotent repeat), which commits nothing and publishes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from rpc.errors import ErrorCode, RpcError
from schemas.alerts import Alert, AlertEventType, CreateAlertInput, UpdateAlertInput

SYSTEM_ACTOR = "system"


def iso(ts: float) -> str:
    """Unix seconds -> ISO 8601 UTC with milliseconds and a `Z`."""
    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def parse_iso(stamp: str) -> float:
    """`iso`'s output -> unix seconds (to the millisecond it keeps)."""
    return datetime.fromisoformat(stamp).timestamp()


def conflict(alert: Alert, message: str) -> RpcError:
    return RpcError(
        ErrorCode.CONFLICT,
        message,
        {"alertId": alert.id, "status": alert.status, "version": alert.version},
    )


@dataclass(frozen=True, slots=True)
class Change:
    alert: Alert
    event_type: AlertEventType


def create(alert_id: str, data: CreateAlertInput, actor: str, now: float) -> Change:
    stamp = iso(now)
    alert = Alert(
        id=alert_id,
        hospital_id=data.hospital_id,
        patient_id=data.patient_id,
        location=data.location,
        type=data.type,
        priority=data.priority,
        status="active",
        escalation_level=0,
        title=data.title,
        message=data.message,
        assigned_to=None,
        created_at=stamp,
        created_by=actor,
        acknowledged_at=None,
        acknowledged_by=None,
        resolved_at=None,
        resolved_by=None,
        updated_at=stamp,
        version=1,
    )
    return Change(alert, "alert.created")


def _changed(alert: Alert, now: float, **fields: Any) -> Alert:
    return alert.model_copy(update={**fields, "updated_at": iso(now), "version": alert.version + 1})


def _open(alert: Alert, action: str) -> None:
    if alert.status == "resolved":
        raise conflict(alert, f"Cannot {action} a resolved alert")


def acknowledge(alert: Alert, actor: str, now: float) -> Change | None:
    if alert.status == "acknowledged":
        if alert.acknowledged_by == actor:
            return None  # the same clinician again: unchanged
        raise conflict(alert, "Already acknowledged by someone else")
    _open(alert, "acknowledge")
    updated = _changed(
        alert, now, status="acknowledged", acknowledged_at=iso(now), acknowledged_by=actor
    )
    return Change(updated, "alert.acknowledged")


def escalate(alert: Alert, actor: str, now: float) -> Change:
    """The next tier must acknowledge: the previous acknowledgement no longer stands (the
    event log keeps it)."""
    _open(alert, "escalate")
    updated = _changed(
        alert,
        now,
        status="active",
        escalation_level=alert.escalation_level + 1,
        acknowledged_at=None,
        acknowledged_by=None,
    )
    return Change(updated, "alert.escalated")


def update(alert: Alert, data: UpdateAlertInput, now: float) -> Change | None:
    _open(alert, "update")
    # Field names, not wire aliases: InputModel serialises by alias by default.
    fields = data.model_dump(
        include={"priority", "title", "message", "assigned_to"}, exclude_none=True, by_alias=False
    )
    if all(getattr(alert, name) == value for name, value in fields.items()):
        return None  # nothing would change
    return Change(_changed(alert, now, **fields), "alert.updated")


def resolve(alert: Alert, actor: str, now: float) -> Change:
    _open(alert, "resolve")
    stamp = iso(now)
    updated = _changed(alert, now, status="resolved", resolved_at=stamp, resolved_by=actor)
    return Change(updated, "alert.resolved")


def note(alert: Alert, now: float) -> Change:
    """A note changes nothing of the alert's state, but it is a change of its record: the
    version rises (so the event has a place in the alert's version order) and `updatedAt`
    moves. Allowed on a resolved alert too: what happened after it closed belongs to the
    record (the family was told, the device was replaced)."""
    return Change(_changed(alert, now), "alert.noted")
