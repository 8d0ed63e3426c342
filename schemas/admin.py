"""Schemas of the `admin` procedures (CONTRACT 11): stats of every node, disconnecting a user,
revoking tokens."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from schemas.base import HospitalId, InputModel, PlainText, WireModel

# A token's `sub` (rpc.auth accepts 1 to 256 characters) or `jti`.
Subject = Annotated[PlainText, Field(min_length=1, max_length=256)]
TokenId = Annotated[PlainText, Field(min_length=1, max_length=256)]


class AdminStatsInput(InputModel):
    """Stats of every node; with `hospitalId`, only connections whose token grants that
    hospital and, of their subscriptions, those for it."""

    # The scope marker on the field itself: inside an Optional, HospitalId's would not be
    # seen by the router's access check.
    hospital_id: HospitalId | None = Field(default=None, json_schema_extra={"x-scope": "hospital"})


class NodeStats(WireModel):
    node: str = Field(description="The node's NODE_ID.")
    connections: int = Field(description="Authenticated WebSockets and SSE streams open.")
    users: int = Field(description="Distinct users (`sub`) among them.")
    subscriptions: dict[str, int] = Field(
        description="Live subscriptions by kind (the subscription procedure's path)."
    )


class StatsTotals(WireModel):
    connections: int
    users: int = Field(description="Distinct users: one connected to two nodes counts once.")
    subscriptions: int


class AdminStats(WireModel):
    nodes: list[NodeStats]
    totals: StatsTotals


class DisconnectInput(InputModel):
    """Close every connection of this user, on every node (4001)."""

    sub: Subject


class Disconnected(WireModel):
    closed: int = Field(description="Connections the user had open across the cluster.")


class RevokeTokensInput(InputModel):
    """Either `sub` (with `issuedBefore`, default now: the user's tokens issued before then;
    a token without `iat` counts as issued before) or `jti` (that one token)."""

    sub: Subject | None = None
    issued_before: str | None = Field(
        default=None,
        max_length=40,
        description="ISO 8601 with a time zone, e.g. 2026-01-01T00:00:00Z; default now.",
    )
    jti: TokenId | None = None

    @field_validator("issued_before")
    @classmethod
    def _moment(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError("must be an ISO 8601 date and time") from None
        if moment.tzinfo is None:
            raise ValueError("must name its time zone (e.g. end with Z)")
        return value

    @model_validator(mode="after")
    def _one_target(self) -> RevokeTokensInput:
        if (self.sub is None) == (self.jti is None):
            raise ValueError("give either sub (with an optional issuedBefore) or jti")
        if self.jti is not None and self.issued_before is not None:
            raise ValueError("issuedBefore goes with sub, not with jti")
        return self

    def issued_before_ts(self) -> float | None:
        if self.issued_before is None:
            return None
        return datetime.fromisoformat(self.issued_before).timestamp()


class Revoked(WireModel):
    revoked: Literal[True] = True
