"""Schemas of the `system` and `auth` procedures."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from schemas.base import InputModel, PlainText, WireModel

Role = Literal["nurse", "physician", "charge_nurse", "admin", "service"]


class Identity(WireModel):
    """The authenticated caller, as its token describes it."""

    sub: str
    role: Role
    hospitals: list[str]
    expires_at: str = Field(description="When the token expires (ISO 8601 UTC).")


class AuthenticateInput(InputModel):
    """A bearer token for this connection (first message, or later to refresh)."""

    token: Annotated[PlainText, Field(min_length=1, max_length=8192)]
