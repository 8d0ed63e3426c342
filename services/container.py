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
from schemas.alerts import Priority
from services.alerts import AlertService
from services.bus import EventBus, LocalBus
from services.bus_postgres import PostgresEventBus
from services.config import DomainConfig
from services.escalation import EscalationPolicy
from services.lifecycle import parse_iso
from services.metrics import MetricsService
from services.store import IDEMPOTENCY_TTL_S, AlertStore, StoredEvent
from services.store_postgres import PostgresAlertStore
from services.store_sqlite import SqliteAlertStore
from services.subscriptions import AlertSubscriptionService
from services.vitals import VitalsService
from services.vitals_store import make_vitals_store

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
        self.metrics = MetricsService(store, registry, config.targets, clock)
        cluster = isinstance(store, PostgresAlertStore)
        reload_s = CLUSTER_RELOAD_S if cluster else None
        self.escalation = EscalationPolicy(self.alerts, store, clock, reload_s)
        self.bus = make_bus(store, self.subscriptions)
        store.on_commit = self.bus.committed
        self.subscriptions.on(self.metrics.alert_committed)
        if isinstance(store, PostgresAlertStore):
            self.subscriptions.on(functools.partial(self._heard_in_cluster, store))
        self._pruner: asyncio.Task[None] | None = None
        self.vitals = VitalsService(
            make_vitals_store(store), self.alerts, registry.cluster, config.device_silence_s, clock
        )

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
        await services.bus.start()
        if background:
            await services.escalation.start()
            services._pruner = asyncio.create_task(services._prune_forever(), name="retention")
            services.vitals.start()
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
        await self.vitals.store.prune(now - self.config.vitals_retention_s)
        return marks

    async def _prune_forever(self) -> None:
        while True:
            try:
                marks = await self.prune()
                if marks:
                    log.info("retention pruned the event log of %d hospital(s)", len(marks))
            except Exception:
                log.exception("retention pruning failed; will retry")
            await asyncio.sleep(self.config.prune_interval_s)

    async def health(self) -> dict[str, object]:
        # CONTRACT 7: "down" while the database cannot be reached (/health answers 503).
        storage = "ok" if await self.store.healthy() else "down"
        return {"storage": storage, **self.bus.health()}

    async def close(self) -> None:
        await self.vitals.stop()
        await self.escalation.stop()
        if self._pruner is not None:
            self._pruner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pruner
        await self.bus.stop()
        await self.store.close()
