"""Inbound webhooks (CONTRACT 9): what the HTTP handler needs from the application, and which
procedure each path stands for.

`POST /api/webhooks/<name>` is the procedure `INBOUND_ROUTES[name]` names, called through the
dispatcher like any other call (the same validation, roles and hospital checks) by a
`service` principal made from the API key: its hospital is the only one it may name, and the
path needs the scope listed here. A route whose procedure the router does not declare answers
404, so a route is live exactly when its procedure is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class InboundRoute:
    procedure: str
    scope: str
    status: int  # the success status: 201 when the call creates something
    # An input field the Idempotency-Key also fills, when the procedure deduplicates by a key
    # of its own (one event even when two nodes take the same request at once).
    key_field: str | None = None


INBOUND_ROUTES: dict[str, InboundRoute] = {
    "alerts": InboundRoute("healthcare.createAlert", "alerts:write", 201, "idempotencyKey"),
    "vitals": InboundRoute("vitals.report", "vitals:write", 200),
    "devices": InboundRoute("devices.reportStatus", "devices:write", 200),
}


@dataclass(frozen=True, slots=True)
class InboundKey:
    """A verified API key, as the handler needs it (never the key itself)."""

    key_id: str
    hospital_id: str
    name: str
    scopes: frozenset[str]
    signing_secret: str | None


@dataclass(frozen=True, slots=True)
class Remembered:
    """The response to a request that carried an Idempotency-Key."""

    fingerprint: str
    status: int
    body: bytes


class InboundGate(Protocol):
    async def authenticate(self, presented: str) -> InboundKey | None:
        """The key `presented` is, if it is a live key; None otherwise."""

    async def recall(self, hospital_id: str, key: str) -> Remembered | None:
        """The response remembered for this Idempotency-Key (24 h)."""

    async def remember(self, hospital_id: str, key: str, response: Remembered) -> Remembered:
        """Remember `response`, unless another was first; returns the one remembered."""
