"""The integrations' tables in PostgreSQL (services/integration_store.py), on the alert
store's pool: every node of a cluster reads and writes the same keys, remembered responses,
endpoints and attempts. Every call is a read, an idempotent single statement or a whole
transaction, so it is retried once on a fresh connection when the first one turns out dead
(services/postgres_pool.py `repeatable`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import orjson

from services.integration_sqlite import (
    INSERT_API_KEY,
    INSERT_ATTEMPT,
    INSERT_WEBHOOK,
    SELECT_API_KEYS,
    SELECT_ATTEMPTS,
    SELECT_WEBHOOKS,
    api_key_row,
    attempt_row,
    attempt_values,
    webhook_row,
)
from services.integration_store import (
    ApiKeyRow,
    DeliveryAttempt,
    Progress,
    RememberedResponse,
    WebhookRow,
)
from services.postgres_pool import repeatable
from services.store_postgres import PostgresAlertStore

if TYPE_CHECKING:
    from services.postgres_pool import Connection


def _count(status: str) -> int:
    """asyncpg's command status ("DELETE 3") -> 3."""
    tail = status.rsplit(" ", 1)[-1]
    return int(tail) if tail.isdigit() else 0


class PostgresIntegrationStore:
    def __init__(self, store: PostgresAlertStore) -> None:
        self._store = store

    async def _rows(self, sql: str, *args: Any) -> list[Any]:
        async def call(conn: Connection) -> list[Any]:
            return list(await conn.fetch(sql, *args))

        return await repeatable(self._store._pool, call)

    async def _execute(self, sql: str, *args: Any) -> int:
        async def call(conn: Connection) -> int:
            return _count(await conn.execute(sql, *args))

        return await repeatable(self._store._pool, call)

    # --- API keys -------------------------------------------------------------------------

    async def add_api_key(self, row: ApiKeyRow) -> None:
        await self._execute(
            INSERT_API_KEY + ""
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING",
            row.key_id,
            row.hospital_id,
            row.name,
            row.prefix,
            row.key_hash,
            orjson.dumps(list(row.scopes)).decode(),
            row.signing_secret,
            row.created_ts,
            row.last_used_ts,
            row.revoked_ts,
        )

    async def api_keys(self, hospital_id: str) -> list[ApiKeyRow]:
        rows = await self._rows(
            SELECT_API_KEYS + " WHERE hospital_id = $1"
            " AND revoked_ts IS NULL ORDER BY created_ts, key_id",
            hospital_id,
        )
        return [api_key_row(row) for row in rows]

    async def api_key(self, key_id: str) -> ApiKeyRow | None:
        rows = await self._rows(SELECT_API_KEYS + " WHERE key_id = $1", key_id)
        return api_key_row(rows[0]) if rows else None

    async def api_keys_by_prefix(self, prefix: str) -> list[ApiKeyRow]:
        rows = await self._rows(
            SELECT_API_KEYS + " WHERE prefix = $1 AND revoked_ts IS NULL",
            prefix,
        )
        return [api_key_row(row) for row in rows]

    async def revoke_api_key(self, key_id: str, at: float) -> bool:
        changed = await self._execute(
            "UPDATE api_keys SET revoked_ts = $1 WHERE key_id = $2 AND revoked_ts IS NULL",
            at,
            key_id,
        )
        return changed > 0

    async def touch_api_key(self, key_id: str, at: float) -> None:
        await self._execute(
            "UPDATE api_keys SET last_used_ts = GREATEST(COALESCE(last_used_ts, 0), $1)"
            " WHERE key_id = $2",
            at,
            key_id,
        )

    # --- inbound idempotency --------------------------------------------------------------

    async def recall_response(
        self, hospital_id: str, key: str, since: float
    ) -> RememberedResponse | None:
        rows = await self._rows(
            "SELECT fingerprint, status, body, created_ts FROM inbound_responses"
            " WHERE hospital_id = $1 AND idempotency_key = $2 AND created_ts >= $3",
            hospital_id,
            key,
            since,
        )
        if not rows:
            return None
        fingerprint, status, body, created = rows[0]
        return RememberedResponse(fingerprint, int(status), bytes(body), float(created))

    async def remember_response(
        self, hospital_id: str, key: str, response: RememberedResponse, since: float
    ) -> RememberedResponse:
        async def call(conn: Connection) -> Any:
            async with conn.transaction():
                await conn.execute(
                    "INSERT INTO inbound_responses"
                    " (hospital_id, idempotency_key, fingerprint, status, body, created_ts)"
                    " VALUES ($1, $2, $3, $4, $5, $6)"
                    " ON CONFLICT (hospital_id, idempotency_key) DO UPDATE SET"
                    " fingerprint = excluded.fingerprint, status = excluded.status,"
                    " body = excluded.body, created_ts = excluded.created_ts"
                    " WHERE inbound_responses.created_ts < $7",
                    hospital_id,
                    key,
                    response.fingerprint,
                    response.status,
                    response.body,
                    response.created_ts,
                    since,
                )
                return await conn.fetchrow(
                    "SELECT fingerprint, status, body, created_ts FROM inbound_responses"
                    " WHERE hospital_id = $1 AND idempotency_key = $2",
                    hospital_id,
                    key,
                )

        row = await repeatable(self._store._pool, call)
        return RememberedResponse(row[0], int(row[1]), bytes(row[2]), float(row[3]))

    async def prune_responses(self, before_ts: float) -> int:
        return await self._execute("DELETE FROM inbound_responses WHERE created_ts < $1", before_ts)

    # --- outbound webhooks ----------------------------------------------------------------

    async def add_webhook(self, row: WebhookRow) -> None:
        await self._execute(
            INSERT_WEBHOOK + " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
            " ON CONFLICT DO NOTHING",
            row.webhook_id,
            row.hospital_id,
            row.url,
            orjson.dumps(list(row.events)).decode(),
            row.description,
            row.secret,
            row.created_ts,
            row.enabled,
            row.cursor,
            row.attempt,
            row.next_attempt_ts,
            row.failing_since,
            row.device_cursor,
            row.retrying_device,
        )

    async def webhooks(self, hospital_id: str) -> list[WebhookRow]:
        rows = await self._rows(
            SELECT_WEBHOOKS + " WHERE hospital_id = $1 ORDER BY created_ts, webhook_id",
            hospital_id,
        )
        return [webhook_row(row) for row in rows]

    async def webhook(self, webhook_id: str) -> WebhookRow | None:
        rows = await self._rows(SELECT_WEBHOOKS + " WHERE webhook_id = $1", webhook_id)
        return webhook_row(rows[0]) if rows else None

    async def delete_webhook(self, webhook_id: str) -> bool:
        async def call(conn: Connection) -> bool:
            async with conn.transaction():
                await conn.execute("DELETE FROM webhook_attempts WHERE webhook_id = $1", webhook_id)
                status = await conn.execute(
                    "DELETE FROM webhooks WHERE webhook_id = $1", webhook_id
                )
            return _count(status) > 0

        return await repeatable(self._store._pool, call)

    async def enabled_webhooks(self) -> list[WebhookRow]:
        rows = await self._rows(SELECT_WEBHOOKS + " WHERE enabled")
        return [webhook_row(row) for row in rows]

    async def save_progress(
        self, webhook_id: str, progress: Progress, attempts: Sequence[DeliveryAttempt] = ()
    ) -> None:
        async def call(conn: Connection) -> None:
            async with conn.transaction():
                await conn.execute(
                    "UPDATE webhooks SET cursor = $1, attempt = $2, next_attempt_ts = $3,"
                    " failing_since = $4, enabled = $5,"
                    " device_cursor = COALESCE($6, device_cursor), retrying_device = $7"
                    " WHERE webhook_id = $8",
                    progress.cursor,
                    progress.attempt,
                    progress.next_attempt_ts,
                    progress.failing_since,
                    progress.enabled,
                    progress.device_cursor,
                    progress.retrying_device,
                    webhook_id,
                )
                if attempts:
                    await conn.executemany(
                        INSERT_ATTEMPT + " VALUES ($1, $2, $3, $4, $5, $6, $7)",
                        [attempt_values(attempt) for attempt in attempts],
                    )

        # A transaction that failed rolled back whole: repeating it records the attempts once.
        await repeatable(self._store._pool, call)

    async def deliveries(self, webhook_id: str, limit: int) -> list[DeliveryAttempt]:
        rows = await self._rows(
            SELECT_ATTEMPTS + " WHERE webhook_id = $1 ORDER BY n DESC LIMIT $2",
            webhook_id,
            limit,
        )
        return [attempt_row(row) for row in rows]

    async def prune_attempts(self, before_ts: float) -> int:
        return await self._execute("DELETE FROM webhook_attempts WHERE at < $1", before_ts)
