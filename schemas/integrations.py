"""Schemas of the `apiKeys` and `webhooks` routers (CONTRACT section 9): credentials for
integrations that POST in, and endpoints Alertwire POSTs alert events out to.

A key or secret appears in exactly one output, the one that creates it; every other output
describes it without it (a key by its `prefix`).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from schemas.base import HospitalId, InputModel, PlainText, WireModel

Scope = Literal["alerts:write", "vitals:write", "devices:write"]
# The event types an endpoint may ask for, one by one or all at once ("alert.*", "device.*").
# `alert.noted` carries a clinical note's text: it leaves the hospital only for an endpoint
# that names it, never through "alert.*". `device.status` is a device's change of status or
# patient (services/device_events.py); alert events never reach an endpoint through "device.*"
# nor device events through "alert.*".
WebhookEventFilter = Literal[
    "alert.*",
    "alert.created",
    "alert.acknowledged",
    "alert.resolved",
    "alert.escalated",
    "alert.updated",
    "alert.noted",
    "device.*",
    "device.status",
]
DeliveryStatus = Literal["pending", "delivered", "failed"]

Name = Annotated[PlainText, Field(min_length=1, max_length=100)]
Description = Annotated[PlainText, Field(min_length=1, max_length=500)]
ObjectId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
WebhookUrl = Annotated[
    PlainText,
    Field(
        min_length=1,
        max_length=2048,
        description=(
            "https only, and not resolving to a private, loopback or link-local address "
            "(unless the server runs with WEBHOOK_ALLOW_PRIVATE=1)."
        ),
    ),
]


# --- API keys -----------------------------------------------------------------------------------


class CreateApiKeyInput(InputModel):
    """A key for one hospital's integration, allowed what its scopes name."""

    hospital_id: HospitalId
    name: Name
    scopes: list[Scope] = Field(min_length=1, max_length=3)
    signed: bool = Field(
        default=False,
        description="Requests must then carry X-Alertwire-Signature made with `signingSecret`.",
    )


class ApiKeyCreated(WireModel):
    """The key and its signing secret, shown this once: only a hash of the key is kept."""

    key_id: str
    key: str = Field(description='"awk_" followed by 43 URL-safe characters (32 random bytes).')
    signing_secret: str | None = Field(description="Null unless the key was created `signed`.")


class ApiKey(WireModel):
    """A key as listed: never the key itself."""

    key_id: str
    name: str
    prefix: str = Field(description="The key's first characters, to tell keys apart.")
    scopes: list[Scope]
    signed: bool
    created_at: str
    last_used_at: str | None = Field(description="Kept to within a minute; null if never used.")


class ListApiKeysInput(InputModel):
    hospital_id: HospitalId


class RevokeApiKeyInput(InputModel):
    key_id: ObjectId


class Revoked(WireModel):
    revoked: bool


# --- outbound webhooks --------------------------------------------------------------------------


class CreateWebhookInput(InputModel):
    """An endpoint that receives the hospital's alert (and device) events of the types
    named."""

    hospital_id: HospitalId
    url: WebhookUrl
    events: list[WebhookEventFilter] = Field(min_length=1, max_length=9)
    description: Description | None = None


class Webhook(WireModel):
    webhook_id: str
    hospital_id: str
    url: str
    events: list[WebhookEventFilter]
    description: str | None
    enabled: bool = Field(description="False once deliveries kept failing for 24 h.")
    created_at: str


class WebhookCreated(Webhook):
    """The endpoint and its signing secret, shown this once."""

    secret: str


class ListWebhooksInput(InputModel):
    hospital_id: HospitalId


class DeleteWebhookInput(InputModel):
    webhook_id: ObjectId


class Deleted(WireModel):
    deleted: bool


class WebhookDeliveriesInput(InputModel):
    webhook_id: ObjectId
    limit: int = Field(default=50, ge=1, le=200)


class Delivery(WireModel):
    """One attempt to deliver an event (or, `pending`, the next one scheduled)."""

    event_id: str
    attempt: int = Field(ge=1)
    status: DeliveryStatus
    http_status: int | None
    error: str | None
    at: str = Field(description="When it was made (for `pending`: when it is due).")
