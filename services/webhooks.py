"""Outbound webhook endpoints (CONTRACT 9), as admins manage them: registered per hospital
with the event types they want, their URL judged safe first (rpc/ssrf.py), their signing
secret shown once; their delivery attempts listed for `webhooks.deliveries`. Delivery itself
is services/webhook_delivery.py.

A new endpoint starts at the hospital's newest event (and newest device event): it receives
what commits after it was created, not the history.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable

from rpc.errors import invalid_params
from rpc.ssrf import UnsafeUrl, check_url
from services.apikeys import new_id, not_found
from services.device_events import DeviceEventLog
from services.integration_store import DeliveryAttempt, IntegrationStore, WebhookRow
from services.store import AlertStore

log = logging.getLogger("alertwire.webhooks")

SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret


class WebhookService:
    def __init__(
        self,
        store: AlertStore,
        integrations: IntegrationStore,
        allow_private: bool,
        clock: Callable[[], float] = time.time,
        devices: DeviceEventLog | None = None,
    ) -> None:
        self.store = store
        self.devices = devices
        self.integrations = integrations
        self.allow_private = allow_private
        self.clock = clock

    async def create(
        self, hospital_id: str, url: str, events: list[str], description: str | None
    ) -> WebhookRow:
        try:
            await check_url(url, self.allow_private)
        except UnsafeUrl as exc:
            raise invalid_params({"url": f"The URL {exc}"}) from None
        newest, _ = await self.store.positions(hospital_id)
        now = self.clock()
        row = WebhookRow(
            webhook_id=new_id("wh_"),
            hospital_id=hospital_id,
            url=url,
            events=tuple(dict.fromkeys(events)),
            description=description,
            secret=SECRET_PREFIX + secrets.token_urlsafe(32),
            created_ts=now,
            cursor=newest,
            next_attempt_ts=now,
            device_cursor=(
                0 if self.devices is None else await self.devices.newest_device_event(hospital_id)
            ),
        )
        await self.integrations.add_webhook(row)
        log.info("webhook %s registered for hospital %s", row.webhook_id, hospital_id)
        return row

    async def of_hospital(self, hospital_id: str) -> list[WebhookRow]:
        return await self.integrations.webhooks(hospital_id)

    async def get(self, webhook_id: str) -> WebhookRow:
        row = await self.integrations.webhook(webhook_id)
        if row is None:
            raise not_found("webhook")
        return row

    async def delete(self, webhook_id: str) -> bool:
        deleted = await self.integrations.delete_webhook(webhook_id)
        if deleted:
            log.info("webhook %s deleted", webhook_id)
        return deleted

    async def deliveries(self, hook: WebhookRow, limit: int) -> list[DeliveryAttempt]:
        """The newest attempts first, after the next one scheduled (`pending`) when the
        endpoint is retrying an event."""
        attempts = await self.integrations.deliveries(hook.webhook_id, limit)
        if not hook.enabled or hook.attempt == 0 or not attempts:
            return attempts
        retried = attempts[0].event_id  # the failed attempt's event is the one tried again
        pending = DeliveryAttempt(
            hook.webhook_id, retried, hook.attempt + 1, "pending", None, None, hook.next_attempt_ts
        )
        return [pending, *attempts][:limit]
