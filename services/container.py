"""The healthcare services, assembled: store, event bus, subscriptions, alerts, metrics,
escalation and retention. `server.main` opens one `Services` per process and hands it to the
dispatcher; procedures reach it as `ctx.services`."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Callable, Sequence

import orjson

from rpc.connections import ConnectionRegistry
from rpc.context import Principal
from rpc.outbound_webhooks import WebhookSender
from schemas.alerts import Priority
from services.admin import AdminService
from services.alerts import AlertService
from services.apikeys import ApiKeyService
from services.audit import AuditReader, audit_reader
from services.bus import EventBus, LocalBus
from services.bus_postgres import PostgresEventBus
from services.config import DomainConfig
from services.escalation import EscalationPolicy
from services.integration_postgres import PostgresIntegrationStore
from services.integration_sqlite import SqliteIntegrationStore
from services.integration_store import IntegrationStore
from services.lifecycle import parse_iso
from services.metrics import MetricsService
from services.notification_cursor import make_cursor_store
from services.notification_store import NotificationStore, SqliteNotificationStore
from services.notification_store_postgres import PostgresNotificationStore
from services.notification_sweep import NotificationSweep
from services.notifications import NotificationService
from services.presence import PresenceService
from services.revocations import revocation_store
from services.store import IDEMPOTENCY_TTL_S, AlertStore, StoredEvent
from services.store_postgres import PostgresAlertStore
from services.store_sqlite import SqliteAlertStore
from services.subscriptions import AlertSubscriptionService
from services.vitals import VitalsService
from services.vitals_live import DeviceChanged
from services.vitals_store import make_vitals_store
from services.webhook_delivery import WebhookDeliverer, log_disabled
from services.webhooks import WebhookService

log = logging.getLogger("alertwire.services")

# In a cluster, how often each node reloads the escalation schedule from the store: the
# backstop for a change it did not hear of (its events reach it within milliseconds).
CLUSTER_RELOAD_S = 10.0


def make_store(config: DomainConfig) -> SqliteAlertStore | PostgresAlertStore:
    """The store DATABASE_URL names, not yet opened: PostgreSQL, or the embedded SQLite file."""
    if config.postgres_url is not None:
        return PostgresAlertStore(config.postgres_url)
    # The SQLite store creates its directory and files itself, private (services.private_files).
    return SqliteAlertStore(config.database_path, config.synchronous)


def make_integration_store(store: AlertStore) -> IntegrationStore:
    """The integrations' tables live in the alert store's database (same file or pool)."""
    if isinstance(store, PostgresAlertStore):
        return PostgresIntegrationStore(store)
    assert isinstance(store, SqliteAlertStore)
    return SqliteIntegrationStore(store)


def make_notification_store(store: AlertStore) -> NotificationStore:
    """The inbox and staff directory, in the alert store's database and on its connections."""
    if isinstance(store, PostgresAlertStore):
        return PostgresNotificationStore(store)
    if isinstance(store, SqliteAlertStore):
        return SqliteNotificationStore(store)
    raise TypeError(f"no notification store for {type(store).__name__}")


def make_bus(store: AlertStore, subscriptions: AlertSubscriptionService) -> EventBus:
    """On PostgreSQL, commits of every node reach this one (services/bus_postgres.py); on the
    embedded store, this node's commits are all there are."""
    if isinstance(store, PostgresAlertStore):
        return PostgresEventBus(store, subscriptions)
    return LocalBus(subscriptions)


class Services:
    def __init__(
        self,
        store: AlertStore,
        registry: ConnectionRegistry,
        config: DomainConfig,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.store = store
        self.clock = clock
        self.subscriptions = AlertSubscriptionService(store)
        self.alerts = AlertService(store, config.targets, clock)
        self.audit: AuditReader = audit_reader(store)
        self.presence = PresenceService(registry.cluster, clock, config.presence_away_s)
        self.notifications = NotificationService(
            make_notification_store(store), registry.cluster, clock
        )
        self.alerts.on_committed(self.notifications.alert_committed)
        # What the fast path above loses (a crash, a failed write) is written from the log.
        self.notification_sweep = NotificationSweep(
            make_cursor_store(store), self.notifications, registry.cluster
        )
        self.metrics = MetricsService(store, registry, config.targets, clock)
        cluster = isinstance(store, PostgresAlertStore)
        reload_s = CLUSTER_RELOAD_S if cluster else None
        self.escalation = EscalationPolicy(self.alerts, store, clock, reload_s)
        self.bus = make_bus(store, self.subscriptions)
        self.admin = AdminService(revocation_store(store), registry.cluster, clock)
        store.on_commit = self.bus.committed
        self.subscriptions.on(self.metrics.alert_committed)
        if isinstance(store, PostgresAlertStore):
            self.subscriptions.on(functools.partial(self._heard_in_cluster, store))
        self.integrations = make_integration_store(store)
        self.api_keys = ApiKeyService(self.integrations, registry.cluster, clock)
        vitals_store = make_vitals_store(store)
        self.webhooks = WebhookService(
            store, self.integrations, config.webhook_allow_private, clock, vitals_store
        )
        self.deliveries = WebhookDeliverer(
            store,
            self.integrations,
            registry.cluster,
            clock,
            self._endpoint_disabled,
            devices=vitals_store,
        )
        self.subscriptions.on(self.deliveries.heard)
        self._pruner: asyncio.Task[None] | None = None
        self.prune_rounds = 0
        self._revocation_reload: asyncio.Task[None] | None = None
        self.vitals = VitalsService(
            vitals_store, self.alerts, registry.cluster, config.device_silence_s, clock
        )
        # A device change on any node (the vitals broadcast) may be a device event for the
        # hospital's endpoints.
        self._unhear_devices = registry.cluster.on_message(
            DeviceChanged, lambda message: self.deliveries.heard_devices(message.hospital_id)
        )

    def heard_call(self, principal: Principal) -> None:
        """Every authenticated call (the dispatcher's `on_call`): presence counts it as
        activity, the staff directory records who works where."""
        self.presence.heard_call(principal)
        self.notifications.heard_call(principal)

    def observe(
        self, commit_seconds: Callable[[float], None], delivered: Callable[[float], None]
    ) -> None:
        """Feed the latency histograms: `commit_seconds` hears each write batch's commit time,
        `delivered` the commit time (time.perf_counter) of each event this node committed,
        once it is on its way to every subscriber here."""
        self.store.on_commit_seconds = commit_seconds
        self.subscriptions.on_delivered = delivered
        bus_committed = self.bus.committed

        def committed(events: Sequence[StoredEvent]) -> None:
            now = time.perf_counter()
            for event in events:
                event.stamp(now)
            bus_committed(events)

        self.store.on_commit = committed

    @classmethod
    async def open(
        cls,
        config: DomainConfig,
        registry: ConnectionRegistry,
        clock: Callable[[], float] = time.time,
        background: bool = True,
    ) -> Services:
        """Open storage (migrating it; its directory and files are created private, see
        services.private_files), start the event bus and rebuild the escalation schedule.
        `background` starts the escalation and retention tasks (tests drive them by hand
        instead)."""
        store = make_store(config)
        await store.open()
        services = cls(store, registry, config, clock)
        await services.admin.load()  # revocations made before this node started
        await services.bus.start()
        if background and isinstance(store, PostgresAlertStore):
            services._revocation_reload = asyncio.create_task(
                services.admin.reload_forever(), name="revocation-reload"
            )
        if background:
            await services.escalation.start()
            await services.presence.start()
            services._pruner = asyncio.create_task(services._prune_forever(), name="retention")
            services.vitals.start()
            services.notification_sweep.start()
        else:
            await services.escalation.load()
        return services

    def _heard_in_cluster(self, store: PostgresAlertStore, event: StoredEvent) -> None:
        """Every committed event, from any node (this one's too, which changes nothing): the
        store's cache drops an older copy of the alert, and the escalation policy schedules
        an alert that another node raised or changed. Decoded once for both."""
        body = orjson.loads(event.payload)
        alert = body["alert"]
        store.heard(event.alert_id, int(alert["version"]))
        priority: Priority = alert["priority"]
        occurred = parse_iso(body["occurredAt"])
        self.escalation.heard(event.alert_id, alert["status"], priority, occurred)

    async def prune(self) -> dict[str, int]:
        """Apply retention now; returns {hospital: highest pruned event position}. Forgets
        idempotency keys older than IDEMPOTENCY_TTL_S too, whatever the event retention."""
        now = self.clock()
        marks = await self.store.prune(now - self.config.retention_s)
        self.subscriptions.pruned(marks)
        await self.store.prune_keys(now - IDEMPOTENCY_TTL_S)
        await self.integrations.prune_responses(now - IDEMPOTENCY_TTL_S)
        await self.integrations.prune_attempts(now - self.config.retention_s)
        await self.vitals.store.prune(now - self.config.vitals_retention_s)
        await self.vitals.store.prune_device_events(now - self.config.retention_s)
        return marks

    async def start_webhooks(self, sender: WebhookSender) -> None:
        """Deliver outbound webhooks with `sender` (the transport's HTTP client, which the
        composition root makes)."""
        await self.deliveries.start(sender)

    async def _endpoint_disabled(self, hospital_id: str, webhook_id: str) -> None:
        """An endpoint given up on after 24 h of failures: logged, and the hospital's admins
        notified (CONTRACT 10). Only the node holding the endpoint's lease disables it, so
        this runs once per disabling."""
        await log_disabled(hospital_id, webhook_id)
        await self.notifications.notify_webhook_disabled(hospital_id, webhook_id)

    async def _prune_forever(self) -> None:
        while True:
            try:
                marks = await self.prune()
                if marks:
                    log.info("retention pruned the event log of %d hospital(s)", len(marks))
            except Exception:
                log.exception("retention pruning failed; will retry")
            # Rounds finished (tests that count the writer's queue wait for the first one).
            self.prune_rounds += 1
            await asyncio.sleep(self.config.prune_interval_s)

    async def health(self) -> dict[str, object]:
        # CONTRACT 7: "down" while the database cannot be reached (/health answers 503).
        storage = "ok" if await self.store.healthy() else "down"
        return {"storage": storage, **self.bus.health()}

    async def close(self) -> None:
        self._unhear_devices()
        await self.presence.stop()
        await self.notification_sweep.stop()
        await self.notifications.close()
        await self.vitals.stop()
        await self.escalation.stop()
        await self.deliveries.stop()
        await self.api_keys.close()
        for task in (self._pruner, self._revocation_reload):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self.bus.stop()
        await self.store.close()
