"""Schemas of the `notifications` router (CONTRACT section 10): each user's durable inbox.

Notification ids are fixed-width digit strings, increasing in the order notifications were
written, so they compare as strings too; `lastEventId` of `notifications.subscribe` is one."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field
from typing_extensions import TypeAliasType

from schemas.alerts import Text, Title
from schemas.base import EventId, HospitalId, InputModel, PlainText, WireModel

NotificationKind = Literal["alert.assigned", "alert.escalated", "webhook.disabled", "broadcast"]
Severity = Literal["info", "warning", "critical"]
NotificationId = Annotated[str, Field(min_length=1, max_length=19, pattern=r"^[0-9]+$")]


class Notification(WireModel):
    id: str
    kind: NotificationKind
    title: str
    message: str | None
    hospital_id: str | None
    alert_id: str | None = Field(description="The alert it is about, for the alert kinds.")
    severity: Severity | None = Field(description="A broadcast's severity; null for the others.")
    created_at: str
    read_at: str | None


class NotificationPage(WireModel):
    """`unread`: the user's unread notifications in all (not only on this page)."""

    items: list[Notification]
    next_cursor: str | None
    unread: int = Field(ge=0)


class NotificationNew(WireModel):
    type: Literal["notification.new"]
    notification: Notification


class NotificationRead(WireModel):
    """These notifications were read (on any device of the user)."""

    type: Literal["notification.read"]
    ids: list[str]


class NotificationCount(WireModel):
    """The unread count: sent at the start and whenever it changes."""

    type: Literal["notification.count"]
    unread: int = Field(ge=0)


NotificationEvent = TypeAliasType(
    "NotificationEvent",
    Annotated[NotificationNew | NotificationRead | NotificationCount, Field(discriminator="type")],
)


class MarkReadResult(WireModel):
    """`ids`: those this call marked (already read ones are left out); `unread` after it."""

    ids: list[str]
    unread: int = Field(ge=0)


class BroadcastResult(WireModel):
    recipients: int = Field(ge=0, description="Staff of the hospital the notice was written for.")


# --- inputs -------------------------------------------------------------------------------------


class ListNotificationsInput(InputModel):
    """A page of one's notifications, newest first."""

    unread_only: bool = False
    cursor: Annotated[PlainText, Field(min_length=1, max_length=19)] | None = None
    limit: Annotated[int, Field(ge=1, le=200)] = 50


class MarkReadInput(InputModel):
    ids: Annotated[list[NotificationId], Field(min_length=1, max_length=500)]


class SubscribeNotificationsInput(InputModel):
    """Live; after `lastEventId`, the notifications written since come first."""

    last_event_id: EventId | None = None


class BroadcastInput(InputModel):
    """A notice to every staff member of the hospital (e.g. planned maintenance)."""

    hospital_id: HospitalId
    title: Title
    message: Text
    severity: Severity = "info"
