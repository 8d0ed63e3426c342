"""Assemble and run the server: services, dispatcher, transport, signals."""

from __future__ import annotations

import asyncio
import functools
import gc
import logging
import signal
import sys
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from dashboard import STATIC_DIR as DASHBOARD_DIR
from routers.app import app_router
from rpc.cluster import ClusterState
from rpc.cluster_memory import InMemoryClusterState
from rpc.connections import ConnectionRegistry
from rpc.dispatch import Dispatcher
from rpc.metrics import Metrics
from rpc.transport_aiohttp import HEALTH_KEY, ServerState, create_app, shutdown
from rpc.transport_aiohttp.flush import when_flushed
from rpc.transport_aiohttp.guard import GuardedSite
from rpc.transport_aiohttp.webhook_client import WebhookClient
from server import logs
from server.config import ServerConfig
from server.files import fit_to_file_limit
from services.cluster_redis import RedisClusterState
from services.config import ClusterConfig, without_password
from services.container import Services

log = logging.getLogger("alertwire.server")

SHUTDOWN_GRACE_S = 5.0


@dataclass
class Running:
    app: web.Application
    state: ServerState
    runner: web.AppRunner
    services: Any
    host: str
    port: int

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"


async def open_services(config: ServerConfig, registry: ConnectionRegistry) -> Services:
    services = await Services.open(config.domain, registry)
    domain = config.domain
    await services.start_webhooks(
        WebhookClient(domain.webhook_allow_private, domain.webhook_timeout_s)
    )
    return services


def make_cluster(config: ClusterConfig) -> ClusterState:
    """What every node must see at once: in memory on one node, in Redis with REDIS_URL."""
    if config.redis_url is None:
        return InMemoryClusterState(config.node_id)
    return RedisClusterState(config.redis_url, config.node_id, config.name)


def observe_latency(services: Services, metrics: Metrics) -> None:
    """Commit duration from the store; an event's delivery delay once its fan-out on this node
    is done and the WebSocket writes it caused are made (once per event, not per subscriber)."""
    if not metrics.latency:
        return

    def delivered(committed_at: float) -> None:
        when_flushed(functools.partial(metrics.delivered, committed_at))

    services.observe(metrics.commit_seconds.observe, delivered)


async def build(config: ServerConfig) -> tuple[web.Application, ServerState, Services]:
    cluster = make_cluster(config.cluster)
    registry = ConnectionRegistry(cluster)
    services = await open_services(config, registry)
    await cluster.start()  # after the store: a node that cannot open it never joins
    dispatcher = Dispatcher(app_router, services)
    dispatcher.on_call = services.heard_call
    state = ServerState(
        dispatcher=dispatcher,
        auth=config.auth,
        limits=fit_to_file_limit(config.limits),
        registry=registry,
        origins=config.origins,
        metrics=Metrics(node=config.cluster.node_id, latency=config.latency_metrics),
        metrics_token=config.metrics_token,
        revocations=services.admin.revocations,
        inbound=services.api_keys,
    )
    services.admin.counted = state.metrics.admin_actions.inc
    observe_latency(services, state.metrics)
    app = create_app(state, site_dir=DASHBOARD_DIR)
    app[HEALTH_KEY].append(services.health)
    app[HEALTH_KEY].append(cluster.health)  # "node", and "bus" with REDIS_URL
    logs.route_client_errors(state.client_errors)  # aiohttp's malformed requests, counted
    return app, state, services


async def listen(
    app: web.Application, state: ServerState, services: Any, config: ServerConfig
) -> Running:
    """Bind and start serving `app`; the state turns ready once the port is bound."""
    runner = web.AppRunner(
        app,
        handle_signals=False,
        access_log=None,
        shutdown_timeout=2.0,
        keepalive_timeout=state.limits.keepalive_timeout_s,
    )
    await runner.setup()
    # A deep accept queue: after a restart every dashboard reconnects at once.
    site = GuardedSite(
        runner, state.guard, config.host, config.port, reuse_address=True, backlog=4096
    )
    await site.start()
    port = config.port
    if runner.addresses:  # the bound port, for port 0 (any event loop)
        port = int(runner.addresses[0][1])
    state.ready = True
    return Running(app, state, runner, services, config.host, port)


async def start(config: ServerConfig) -> Running:
    app, state, services = await build(config)
    return await listen(app, state, services, config)


async def stop(running: Running) -> None:
    """/health turns 503 and new sockets are refused at once; clients are told to reconnect
    and closed with 1012; then the listener and the services close."""
    await shutdown(running.state, SHUTDOWN_GRACE_S)
    await running.runner.cleanup()
    close = getattr(running.services, "close", None)
    if close is not None:
        await close()
    # Last: the node leaves the cluster's view once its sockets are closed.
    await running.state.registry.cluster.close()


def describe(config: ServerConfig, port: int) -> str:
    mode = (
        "production"
        if config.production
        else f"development mode (JWT secret from {config.secret_source})"
    )
    return (
        f"Alertwire listening on http://{config.host}:{port} "
        f"(WebSocket ws://{config.host}:{port}/api/trpc); "
        f"data in {without_password(config.database_url)}; {mode}; "
        f"node {config.cluster.node_id}{_cluster_note(config.cluster)}"
    )


def _cluster_note(config: ClusterConfig) -> str:
    if config.redis_url is None:
        return ""
    return f" of cluster {config.name} (Redis {without_password(config.redis_url)})"


GIL_SWITCH_INTERVAL_S = 0.0005


def settle_heap() -> None:
    """Once the process is up: collect the start-up garbage, then move everything alive (the
    modules, schemas and validators: hundreds of thousands of objects) out of the cyclic
    collector's reach. A full collection then walks only what was made since, the
    connections' objects, so its pause does not grow with the code's size: under a burst of
    connections (a reconnect storm, an upgrade flood) full collections come often, and each
    walked every object of the process, stalling the loop for tens of milliseconds. For a
    process's entry point only (an embedding test suite keeps collecting what it frees)."""
    gc.collect()
    gc.freeze()
    # The database thread needs the GIL back after each statement; while the loop writes to
    # a thousand sockets it would wait up to the default 5 ms switch interval each time, and a
    # commit of a few statements took over 10 ms. Handing the GIL over sooner costs little.
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)


async def run(config: ServerConfig) -> int:
    stop_event = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop_event.set)
    running = await start(config)
    settle_heap()
    # The banner is the signal that the server is up: handlers are in place before it.
    print(describe(config, running.port), flush=True)
    # The handlers stay installed until the loop closes: a repeated signal during the
    # graceful shutdown does not cut it short.
    try:
        await stop_event.wait()
        log.info("shutting down")
    finally:
        await stop(running)
    log.info("stopped")
    return 0
