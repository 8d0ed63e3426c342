"""The integrations' tables in the SQLite file (services/integration_store.py).

Writes join the alert store's write queue as steps of its next batch (each in a savepoint of
its own: all of it or nothing), so they share its group commit: a remembered Idempotency-Key
response or a webhook's progress costs no commit of its own, and nothing interleaves with a
batch. Reads are one hop to the reader connection's thread (services/sqlite_batch.py
`run_on_thread`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import orjson

from services.integration_store import (
    ApiKeyRow,
    DeliveryAttempt,
    Progress,
    RememberedResponse,
    WebhookRow,
)
from services.sqlite_batch import run_on_thread
from services.store_sqlite import SqliteAlertStore, _Pending

R = TypeVar("R")

API_KEY_COLUMNS = (
    "key_id, hospital_id, name, prefix, key_hash, scopes, signing_secret, created_ts,"
    " last_used_ts, revoked_ts"
)
WEBHOOK_COLUMNS = (
    "webhook_id, hospital_id, url, events, description, secret, created_ts, enabled, cursor,"
    " attempt, next_attempt_ts, failing_since, device_cursor, retrying_device"
)
ATTEMPT_COLUMNS = "webhook_id, event_id, attempt, status, http_status, error, at"
# Built once from the column lists above (no input in them), shared by both stores.
SELECT_API_KEYS = "SELECT " + API_KEY_COLUMNS + " FROM api_keys"  # noqa: S608
SELECT_WEBHOOKS = "SELECT " + WEBHOOK_COLUMNS + " FROM webhooks"  # noqa: S608
SELECT_ATTEMPTS = "SELECT " + ATTEMPT_COLUMNS + " FROM webhook_attempts"  # noqa: S608
INSERT_API_KEY = "INSERT INTO api_keys (" + API_KEY_COLUMNS + ")"
INSERT_WEBHOOK = "INSERT INTO webhooks (" + WEBHOOK_COLUMNS + ")"
INSERT_ATTEMPT = "INSERT INTO webhook_attempts (" + ATTEMPT_COLUMNS + ")"


def api_key_row(row: Any) -> ApiKeyRow:
    return ApiKeyRow(
        row[0], row[1], row[2], row[3], row[4], tuple(orjson.loads(row[5])), *row[6:10]
    )


def webhook_row(row: Any) -> WebhookRow:
    return WebhookRow(
        row[0],
        row[1],
        row[2],
        tuple(orjson.loads(row[3])),
        row[4],
        row[5],
        row[6],
        bool(row[7]),
        int(row[8]),
        int(row[9]),
        float(row[10]),
        row[11],
        int(row[12]),
        bool(row[13]),
    )


def attempt_row(row: Any) -> DeliveryAttempt:
    return DeliveryAttempt(row[0], row[1], int(row[2]), row[3], row[4], row[5], float(row[6]))


def attempt_values(a: DeliveryAttempt) -> tuple[Any, ...]:
    return (a.webhook_id, a.event_id, a.attempt, a.status, a.http_status, a.error, a.at)


class SqliteIntegrationStore:
    def __init__(self, store: SqliteAlertStore) -> None:
        self._store = store

    async def _write(self, fn: Callable[[sqlite3.Connection], R]) -> R:
        value: R = await self._store._submit(_Pending(step=fn))
        return value

    async def _read(self, fn: Callable[[sqlite3.Connection], R]) -> R:
        return await run_on_thread(self._store._conn(read=True), fn)

    async def _rows(self, sql: str, *args: Any) -> list[Any]:
        return await self._read(lambda conn: conn.execute(sql, args).fetchall())

    async def _change(self, sql: str, *args: Any) -> int:
        return await self._write(lambda conn: conn.execute(sql, args).rowcount)

    # --- API keys -------------------------------------------------------------------------

    async def add_api_key(self, row: ApiKeyRow) -> None:
        await self._change(
            INSERT_API_KEY + " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
            SELECT_API_KEYS + " WHERE hospital_id = ? AND revoked_ts IS NULL"
            " ORDER BY created_ts, key_id",
            hospital_id,
        )
        return [api_key_row(row) for row in rows]

    async def api_key(self, key_id: str) -> ApiKeyRow | None:
        rows = await self._rows(SELECT_API_KEYS + " WHERE key_id = ?", key_id)
        return api_key_row(rows[0]) if rows else None

    async def api_keys_by_prefix(self, prefix: str) -> list[ApiKeyRow]:
        rows = await self._rows(
            SELECT_API_KEYS + " WHERE prefix = ? AND revoked_ts IS NULL",
            prefix,
        )
        return [api_key_row(row) for row in rows]

    async def revoke_api_key(self, key_id: str, at: float) -> bool:
        changed = await self._change(
            "UPDATE api_keys SET revoked_ts = ? WHERE key_id = ? AND revoked_ts IS NULL", at, key_id
        )
        return changed > 0

    async def touch_api_key(self, key_id: str, at: float) -> None:
        await self._change("UPDATE api_keys SET last_used_ts = ? WHERE key_id = ?", at, key_id)

    # --- inbound idempotency --------------------------------------------------------------

    async def recall_response(
        self, hospital_id: str, key: str, since: float
    ) -> RememberedResponse | None:
        rows = await self._rows(
            "SELECT fingerprint, status, body, created_ts FROM inbound_responses"
            " WHERE hospital_id = ? AND idempotency_key = ? AND created_ts >= ?",
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
        def work(conn: sqlite3.Connection) -> Any:
            conn.execute(
                "INSERT INTO inbound_responses"
                " (hospital_id, idempotency_key, fingerprint, status, body, created_ts)"
                " VALUES (?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (hospital_id, idempotency_key) DO UPDATE SET"
                " fingerprint = excluded.fingerprint, status = excluded.status,"
                " body = excluded.body, created_ts = excluded.created_ts"
                " WHERE inbound_responses.created_ts < ?",
                (
                    hospital_id,
                    key,
                    response.fingerprint,
                    response.status,
                    response.body,
                    response.created_ts,
                    since,
                ),
            )
            return conn.execute(
                "SELECT fingerprint, status, body, created_ts FROM inbound_responses"
                " WHERE hospital_id = ? AND idempotency_key = ?",
                (hospital_id, key),
            ).fetchone()

        row = await self._write(work)
        return RememberedResponse(row[0], int(row[1]), bytes(row[2]), float(row[3]))

    async def prune_responses(self, before_ts: float) -> int:
        return await self._change("DELETE FROM inbound_responses WHERE created_ts < ?", before_ts)

    # --- outbound webhooks ----------------------------------------------------------------

    async def add_webhook(self, row: WebhookRow) -> None:
        await self._change(
            INSERT_WEBHOOK + " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            row.webhook_id,
            row.hospital_id,
            row.url,
            orjson.dumps(list(row.events)).decode(),
            row.description,
            row.secret,
            row.created_ts,
            int(row.enabled),
            row.cursor,
            row.attempt,
            row.next_attempt_ts,
            row.failing_since,
            row.device_cursor,
            int(row.retrying_device),
        )

    async def webhooks(self, hospital_id: str) -> list[WebhookRow]:
        rows = await self._rows(
            SELECT_WEBHOOKS + " WHERE hospital_id = ? ORDER BY created_ts, webhook_id",
            hospital_id,
        )
        return [webhook_row(row) for row in rows]

    async def webhook(self, webhook_id: str) -> WebhookRow | None:
        rows = await self._rows(SELECT_WEBHOOKS + " WHERE webhook_id = ?", webhook_id)
        return webhook_row(rows[0]) if rows else None

    async def delete_webhook(self, webhook_id: str) -> bool:
        def work(conn: sqlite3.Connection) -> bool:
            conn.execute("DELETE FROM webhook_attempts WHERE webhook_id = ?", (webhook_id,))
            return (
                conn.execute("DELETE FROM webhooks WHERE webhook_id = ?", (webhook_id,)).rowcount
                > 0
            )

        return await self._write(work)

    async def enabled_webhooks(self) -> list[WebhookRow]:
        rows = await self._rows(SELECT_WEBHOOKS + " WHERE enabled = 1")
        return [webhook_row(row) for row in rows]

    async def save_progress(
        self, webhook_id: str, progress: Progress, attempts: Sequence[DeliveryAttempt] = ()
    ) -> None:
        def work(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE webhooks SET cursor = ?, attempt = ?, next_attempt_ts = ?,"
                " failing_since = ?, enabled = ?, device_cursor = COALESCE(?, device_cursor),"
                " retrying_device = ? WHERE webhook_id = ?",
                (
                    progress.cursor,
                    progress.attempt,
                    progress.next_attempt_ts,
                    progress.failing_since,
                    int(progress.enabled),
                    progress.device_cursor,
                    int(progress.retrying_device),
                    webhook_id,
                ),
            )
            conn.executemany(
                INSERT_ATTEMPT + " VALUES (?, ?, ?, ?, ?, ?, ?)",
                [attempt_values(attempt) for attempt in attempts],
            )

        await self._write(work)

    async def deliveries(self, webhook_id: str, limit: int) -> list[DeliveryAttempt]:
        rows = await self._rows(
            SELECT_ATTEMPTS + " WHERE webhook_id = ? ORDER BY n DESC LIMIT ?",
            webhook_id,
            limit,
        )
        return [attempt_row(row) for row in rows]

    async def prune_attempts(self, before_ts: float) -> int:
        return await self._change("DELETE FROM webhook_attempts WHERE at < ?", before_ts)
