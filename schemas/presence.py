"""Schemas of the `presence` router (CONTRACT section 10): who of the staff is connected to a
hospital and how reachable they are, and who is looking at an alert (and typing about it).

Presence is computed from live connections; nothing of it is stored."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field
from typing_extensions import TypeAliasType

from schemas.alerts import AlertId
from schemas.base import HospitalId, InputModel, PlainText, WireModel

PresenceStatus = Literal["online", "away", "busy"]
Activity = Annotated[
    PlainText,
    Field(
        min_length=1,
        max_length=120,
        description='What the user is doing, e.g. "In theatre until 14:00".',
    ),
]


class PresenceMember(WireModel):
    """One staff member connected to the hospital (on any node, by any number of devices)."""

    sub: str
    name: str = Field(description="The token's `name` claim, or the user id when it has none.")
    role: str
    status: PresenceStatus
    activity: str | None
    devices: int = Field(ge=1, description="Live connections of the user, every node counted.")
    since: str = Field(description="When the current status began.")


class PresenceSnapshot(WireModel):
    """Sent first: everyone present now."""

    type: Literal["presence.snapshot"]
    hospital_id: str
    members: list[PresenceMember]


class PresenceChanged(WireModel):
    """Someone arrived, or their status, activity, devices or name changed."""

    type: Literal["presence.changed"]
    member: PresenceMember


class PresenceLeft(WireModel):
    """Someone is gone: their last connection closed more than the grace period ago."""

    type: Literal["presence.left"]
    sub: str


PresenceEvent = TypeAliasType(
    "PresenceEvent",
    Annotated[PresenceSnapshot | PresenceChanged | PresenceLeft, Field(discriminator="type")],
)


class AlertViewer(WireModel):
    sub: str
    name: str
    role: str
    typing: bool


class AlertViewers(WireModel):
    """Who is looking at the alert now (each user once, whatever their devices)."""

    type: Literal["alert.viewers"]
    alert_id: str
    viewers: list[AlertViewer]


# --- inputs -------------------------------------------------------------------------------------


class SubscribePresenceInput(InputModel):
    hospital_id: HospitalId


class SetPresenceInput(InputModel):
    """Set one's status and/or activity; the fields left out stay as they are. `online` gives
    the status back to the automatic one (away after inactivity); `busy` and `away` hold until
    changed or until the user goes offline. An empty `activity` ("") clears it."""

    status: PresenceStatus | None = None
    activity: Annotated[PlainText, Field(max_length=120)] | None = None


class ViewingInput(InputModel):
    """Say that one is looking at an alert (and whether one is typing about it). It lapses by
    itself: repeat it at least every VIEWING_TTL_S (30 s) while looking; `typing` lapses after
    TYPING_TTL_S (6 s) unless repeated. `viewing: false` stops at once."""

    alert_id: AlertId
    typing: bool = False
    viewing: bool = True


class SubscribeToAlertViewersInput(InputModel):
    alert_id: AlertId
