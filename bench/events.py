"""Alert and alert.created event shaped like Alertwire's (CONTRACT 4), for the peer servers."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

_NOTIFICATION_HEAD = (
    b'{"jsonrpc":"2.0","method":"subscription","params":{"subscription":"s1","id":"'
)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def alert_event(seq: int, params: dict[str, Any], actor: str = "bench-publisher") -> dict[str, Any]:
    now = now_iso()
    alert = {
        "id": f"a-{seq}",
        "hospitalId": params["hospitalId"],
        "patientId": params.get("patientId"),
        "location": params.get("location"),
        "type": params.get("type"),
        "priority": params.get("priority"),
        "status": "active",
        "escalationLevel": 0,
        "title": params.get("title"),
        "message": params.get("message"),
        "assignedTo": None,
        "createdAt": now,
        "createdBy": actor,
        "acknowledgedAt": None,
        "acknowledgedBy": None,
        "resolvedAt": None,
        "resolvedBy": None,
        "updatedAt": now,
        "version": 1,
    }
    return {
        "id": f"{seq:012d}",
        "type": "alert.created",
        "hospitalId": params["hospitalId"],
        "alertId": alert["id"],
        "alert": alert,
        "actorId": actor,
        "occurredAt": now,
    }


def notification(event: dict[str, Any]) -> bytes:
    """The JSON-RPC notification carrying `event` to subscription s1, encoded once."""
    event_id: str = event["id"]
    return _NOTIFICATION_HEAD + event_id.encode() + b'","data":' + orjson.dumps(event) + b"}}"
