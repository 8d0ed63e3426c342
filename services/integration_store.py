"""The integrations' storage seam (CONTRACT 9): API keys, the responses remembered for inbound
`Idempotency-Key`s, outbound webhook endpoints with their delivery position, and every
delivery attempt.

Implementations share the alert store's database (services/integration_sqlite.py on its
SQLite file, services/integration_postgres.py on its pool), so that a cluster sees one state:
a key revoked on one node is refused by a store read on another, and an endpoint's position
survives restarts and moves between nodes. The tables are created by the alert store's
migrations (the "integrations" steps of sqlite_schema and postgres_schema).

Outbound delivery is a cursor per endpoint over the durable event log: the endpoint's row keeps
the hospital event position it has delivered through, the attempts made on the next event
and when the next attempt is due. Deliveries move the cursor and record their attempts in one
transaction (`save_progress`), a few successes at a time (services/webhook_delivery.py).
An endpoint that asks for `device.*` has a second cursor, over the hospital's device event log
(services/device_events.py); the retry state (attempt, next attempt, failing since) is the
endpoint's, and `retrying_device` says which log the failing event is from (it is retried
first, so that its attempts are counted on it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class ApiKeyRow:
    key_id: str
    hospital_id: str
    name: str
    prefix: str  # the key's first characters: shown in lists, and how a key is looked up
    key_hash: str  # sha256 of the whole key, hex
    scopes: tuple[str, ...]
    signing_secret: str | None  # kept readable: verifying an HMAC needs it
    created_ts: float
    last_used_ts: float | None = None
    revoked_ts: float | None = None


@dataclass(frozen=True, slots=True)
class RememberedResponse:
    """What an inbound request with an Idempotency-Key was answered."""

    fingerprint: str  # sha256 of the path and body: a different request under the same key
    status: int
    body: bytes
    created_ts: float


@dataclass(frozen=True, slots=True)
class WebhookRow:
    webhook_id: str
    hospital_id: str
    url: str
    events: tuple[str, ...]
    description: str | None
    secret: str  # kept readable: each delivery is signed with it
    created_ts: float
    enabled: bool = True
    cursor: int = 0  # the hospital's event position delivered (or skipped) through
    attempt: int = 0  # failed attempts on the event after `cursor`
    next_attempt_ts: float = 0.0
    failing_since: float | None = None  # the first failure since the last success
    device_cursor: int = 0  # the hospital's device event position delivered (or skipped) through
    retrying_device: bool = False  # the failing event (attempt > 0) is a device event


@dataclass(frozen=True, slots=True)
class DeliveryAttempt:
    webhook_id: str
    event_id: str
    attempt: int
    status: str  # "delivered" | "failed"
    http_status: int | None
    error: str | None
    at: float


@dataclass(frozen=True, slots=True)
class Progress:
    """An endpoint's position after an attempt (or after skipping events it did not ask for)."""

    cursor: int
    attempt: int
    next_attempt_ts: float
    failing_since: float | None
    enabled: bool = True
    device_cursor: int | None = None  # None leaves the device event cursor where it is
    retrying_device: bool = False


class IntegrationStore(Protocol):
    # --- API keys -------------------------------------------------------------------------
    async def add_api_key(self, row: ApiKeyRow) -> None: ...

    async def api_keys(self, hospital_id: str) -> list[ApiKeyRow]:
        """The hospital's keys not revoked, oldest first."""

    async def api_key(self, key_id: str) -> ApiKeyRow | None:
        """A key by id, revoked or not."""

    async def api_keys_by_prefix(self, prefix: str) -> list[ApiKeyRow]:
        """Keys not revoked whose prefix is `prefix` (the caller compares hashes)."""

    async def revoke_api_key(self, key_id: str, at: float) -> bool:
        """True when the key existed and was not revoked yet."""

    async def touch_api_key(self, key_id: str, at: float) -> None: ...

    # --- inbound idempotency --------------------------------------------------------------
    async def recall_response(
        self, hospital_id: str, key: str, since: float
    ) -> RememberedResponse | None:
        """The response remembered for (hospital, key) at or after `since`."""

    async def remember_response(
        self, hospital_id: str, key: str, response: RememberedResponse, since: float
    ) -> RememberedResponse:
        """Keep `response` unless one at or after `since` is kept already (another request
        with the key finished first, maybe on another node); returns the one kept."""

    async def prune_responses(self, before_ts: float) -> int: ...

    # --- outbound webhooks ----------------------------------------------------------------
    async def add_webhook(self, row: WebhookRow) -> None: ...

    async def webhooks(self, hospital_id: str) -> list[WebhookRow]: ...

    async def webhook(self, webhook_id: str) -> WebhookRow | None: ...

    async def delete_webhook(self, webhook_id: str) -> bool:
        """Removes the endpoint and its attempts; True when it existed."""

    async def enabled_webhooks(self) -> list[WebhookRow]: ...

    async def save_progress(
        self, webhook_id: str, progress: Progress, attempts: Sequence[DeliveryAttempt] = ()
    ) -> None:
        """Move the endpoint on and record the attempts, in one transaction."""

    async def deliveries(self, webhook_id: str, limit: int) -> list[DeliveryAttempt]:
        """The newest attempts first."""

    async def prune_attempts(self, before_ts: float) -> int: ...
