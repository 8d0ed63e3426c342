"""Outbound webhook delivery (CONTRACT 9): at least once, in event order per endpoint, across
restarts and nodes.

Each endpoint is a cursor over the hospital's durable event log (services/integration_store.py):
the next event after the cursor that the endpoint asked for is POSTed, and only once it is
answered 2xx does the cursor move past it, together with the attempt's record, in one
transaction. A failure leaves the cursor where it is and schedules the same event again after
1 s, 2 s, 4 s ... at most 1 h apart; an endpoint whose deliveries keep failing for 24 h is
disabled and `on_endpoint_disabled(hospital_id, webhook_id)` is called (admins are told by
whoever the composition root injects; by default it is logged). Nothing is kept in memory
that a restart would lose: the event log is the queue.

In a cluster exactly one node sends for an endpoint: the one holding its lease in the shared
state (`set_if_absent`, then `refresh`), so order per endpoint holds and a receiver is not
sent each event by every node. A node that stops gives its leases back; one that dies loses
them LEASE_S later; either way another node takes the endpoint on from the durable cursor.

Device events (`device.*`, services/device_events.py) come from a second durable log, the
hospital's device event log, behind a second cursor of the endpoint: in order among
themselves, with the same signature, retries, records and lease; the alert events' order and
delivery are untouched by them. The two logs are not ordered with each other (a device event
and an alert raised by it may arrive either way round): each event says when it occurred.

Time: back-off and the failure window are read from the injected clock, so tests move it by
hand and call `run_due`; the background loop calls `run_due` when events commit (any node's,
through the subscriptions) and every TICK_S.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import replace
from typing import Protocol

import orjson

from rpc import signatures
from rpc.cluster import ClusterState, ClusterUnavailable
from rpc.outbound_webhooks import SendResult, WebhookSender
from services import device_events
from services.device_events import DeviceEventLog
from services.integration_store import DeliveryAttempt, IntegrationStore, Progress, WebhookRow
from services.store import AlertStore, StoredEvent

log = logging.getLogger("alertwire.webhooks")

BACKOFF_START_S = 1.0
BACKOFF_MAX_S = 3600.0
FAILURE_WINDOW_S = 24 * 3600.0
LEASE_S = 30.0
TICK_S = 1.0
SWEEP_S = 5.0  # endpoints with nothing new are looked at this often (another node's lease)
PAGE = 100
CONCURRENCY = 16  # endpoints served at once by a node
SAVE_EVERY = 32  # successes recorded (and the cursor moved) in one transaction, at most
SAVE_S = 0.25  # ... or after this long

DisabledHook = Callable[[str, str], Awaitable[None]]


def backoff(attempts: int) -> float:
    """The wait after the `attempts`-th failure on an event: 1 s doubling, at most 1 h."""
    return min(BACKOFF_START_S * 2.0 ** min(attempts - 1, 32), BACKOFF_MAX_S)


# Sent only to an endpoint that names them: a wildcard does not reach them (a note's text is
# clinical; schemas/integrations.py).
NAMED_ONLY = frozenset({"alert.noted"})


_ALERTS = "alerts"
_DEVICES = "devices"


class LoggedEvent(Protocol):
    """An event of either log (services/store.py StoredEvent, services/device_events.py)."""

    @property
    def seq(self) -> int: ...

    @property
    def id(self) -> str: ...

    @property
    def payload(self) -> bytes: ...


def wants_devices(filters: Iterable[str]) -> bool:
    return matches(filters, device_events.EVENT_TYPE)


def matches(filters: Iterable[str], event_type: str) -> bool:
    for pattern in filters:
        if pattern == event_type:
            return True
        if (
            pattern.endswith(".*")
            and event_type.startswith(pattern[:-1])
            and event_type not in NAMED_ONLY
        ):
            return True
    return False


async def log_disabled(hospital_id: str, webhook_id: str) -> None:
    """The default `on_endpoint_disabled`: the ids only (a URL may carry credentials)."""
    log.warning(
        "webhook %s of hospital %s disabled after failing for 24 h", webhook_id, hospital_id
    )


class WebhookDeliverer:
    def __init__(
        self,
        store: AlertStore,
        integrations: IntegrationStore,
        cluster: ClusterState | None,
        clock: Callable[[], float] = time.time,
        on_endpoint_disabled: DisabledHook = log_disabled,
        devices: DeviceEventLog | None = None,
    ) -> None:
        self.store = store
        self.devices = devices
        self.integrations = integrations
        self.cluster = cluster
        self.clock = clock
        self.on_endpoint_disabled = on_endpoint_disabled
        self.sender: WebhookSender | None = None
        self.delivered = 0  # events delivered by this node (the benchmark reads it)
        self._dirty: set[str] = set()  # hospitals with events committed since the last look
        self._swept_at = -SWEEP_S
        self._busy: set[str] = set()
        self._leases: set[str] = set()  # lease keys this node took: given back on stop
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def heard(self, event: StoredEvent) -> None:
        """Every committed event, from any node: its hospital's endpoints have something."""
        self._dirty.add(event.hospital_id)
        self._wake.set()

    def heard_devices(self, hospital_id: str) -> None:
        """A device changed (any node): the hospital's device event log may have grown."""
        self._dirty.add(hospital_id)
        self._wake.set()

    async def start(self, sender: WebhookSender) -> None:
        self.sender = sender
        self._task = asyncio.create_task(self._run_forever(), name="webhook-delivery")

    async def stop(self) -> None:
        """Stop sending; the endpoints' leases are given back, so that another node takes
        them on at once rather than after LEASE_S."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self.sender is not None:
            await self.sender.close()
        if self.cluster is not None:
            for key in list(self._leases):
                with contextlib.suppress(ClusterUnavailable):
                    await self.cluster.delete(key, if_value=self.cluster.node_id)
        self._leases.clear()

    async def _run_forever(self) -> None:
        while True:
            try:
                await self.run_due()
            except Exception as exc:  # storage or cluster down: every tick tries again
                log.warning("webhook delivery round failed (%s); will retry", type(exc).__name__)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), TICK_S)
            self._wake.clear()

    async def run_due(self) -> int:
        """One round: every endpoint this node may serve that has something due gets it (up to
        its first failure). Returns the attempts made."""
        if self.sender is None:
            return 0
        now = self.clock()
        sweep = time.monotonic() - self._swept_at >= SWEEP_S
        if sweep:
            self._swept_at = time.monotonic()
        dirty, self._dirty = self._dirty, set()
        due = [
            hook
            for hook in await self.integrations.enabled_webhooks()
            if hook.next_attempt_ts <= now
            and hook.webhook_id not in self._busy
            and (sweep or hook.attempt > 0 or hook.hospital_id in dirty)
        ]
        if not due:
            return 0
        limit = asyncio.Semaphore(CONCURRENCY)

        async def serve(hook: WebhookRow) -> int:
            async with limit:
                try:
                    return await self._serve(hook)
                except Exception as exc:  # one endpoint's trouble stops none of the others
                    log.warning(
                        "webhook %s: delivery stopped (%s); will retry",
                        hook.webhook_id,
                        type(exc).__name__,
                    )
                    return 0

        return sum(await asyncio.gather(*(serve(hook) for hook in due)))

    async def _serve(self, hook: WebhookRow) -> int:
        if not await self._lease(hook.webhook_id):
            # Another node sends for it; looked at again next round, so that this node takes
            # it on within a tick of that node stopping.
            self._dirty.add(hook.hospital_id)
            return 0
        self._busy.add(hook.webhook_id)
        try:
            # Read again under the lease: another node may have moved it on meanwhile.
            fresh = await self.integrations.webhook(hook.webhook_id)
            if fresh is None or not fresh.enabled or fresh.next_attempt_ts > self.clock():
                return 0
            return await self._drain(fresh)
        finally:
            self._busy.discard(hook.webhook_id)

    async def _lease(self, webhook_id: str) -> bool:
        if self.cluster is None:
            return True
        key = f"webhook-lease:{webhook_id}"
        node = self.cluster.node_id
        try:
            held = await self.cluster.set_if_absent(key, node, LEASE_S) or (
                await self.cluster.refresh(key, node, LEASE_S)
            )
        except ClusterUnavailable:
            return False  # no safe answer to "does another node send for it?"
        if held:
            self._leases.add(key)
        else:
            self._leases.discard(key)
        return held

    async def _drain(self, hook: WebhookRow) -> int:
        """The alert events due, then (for an endpoint that asked for them) the device
        events: each log in its own order, behind its own cursor. A failure in either stops
        the endpoint until its next attempt is due; that attempt starts with the log of the
        failed event, so that it is the next one tried and its attempts count on it."""
        logs = [_ALERTS]
        if self.devices is not None and wants_devices(hook.events):
            logs.insert(1 if not (hook.attempt and hook.retrying_device) else 0, _DEVICES)
        made = 0
        for log in logs:
            more, hook, failed = await self._drain_log(hook, log)
            made += more
            if failed:
                break
        return made

    async def _read(self, hook: WebhookRow, log: str) -> Sequence[LoggedEvent]:
        if log == _ALERTS:
            return await self.store.events_after(hook.hospital_id, hook.cursor, PAGE)
        assert self.devices is not None
        return await self.devices.device_events_after(hook.hospital_id, hook.device_cursor, PAGE)

    async def _drain_log(self, hook: WebhookRow, log: str) -> tuple[int, WebhookRow, bool]:
        """Deliver one log's events in order until they run out or one fails; returns the
        attempts made, the endpoint as saved and whether one failed (or the lease was lost).
        Successes are saved a few at a time (SAVE_EVERY, SAVE_S): a crash before the save
        sends those events again, which at-least-once allows, and the endpoint is not held
        to one commit per event. A failure is saved at once, with the successes before it."""
        assert self.sender is not None
        made = 0
        unsaved: list[DeliveryAttempt] = []
        moved = False  # the cursor moved past events it did not ask for, not yet saved
        saved_at = lease_checked = time.monotonic()
        while True:
            events = await self._read(hook, log)
            for event in events:
                if not matches(hook.events, _event_type(event.payload)):
                    hook, moved = _moved(hook, log, event.seq), True
                    continue
                if time.monotonic() - lease_checked > LEASE_S / 3:
                    if not await self._lease(hook.webhook_id):
                        await self._save(hook, unsaved, moved)
                        return made, hook, True
                    lease_checked = time.monotonic()
                result = await self.sender.post(hook.url, event.payload, self._headers(hook, event))
                made += 1
                hook, attempt = self._attempted(hook, log, event, result)
                unsaved.append(attempt)
                if not result.ok:
                    await self._save(hook, unsaved, True)
                    await self._tell_if_disabled(hook)
                    return made, hook, True
                if len(unsaved) >= SAVE_EVERY or time.monotonic() - saved_at >= SAVE_S:
                    await self._save(hook, unsaved, True)
                    unsaved, moved, saved_at = [], False, time.monotonic()
            if len(events) < PAGE:
                await self._save(hook, unsaved, moved)
                return made, hook, False

    async def _save(self, hook: WebhookRow, attempts: list[DeliveryAttempt], moved: bool) -> None:
        if not attempts and not moved:
            return
        progress = Progress(
            hook.cursor,
            hook.attempt,
            hook.next_attempt_ts,
            hook.failing_since,
            hook.enabled,
            hook.device_cursor,
            hook.retrying_device,
        )
        await self.integrations.save_progress(hook.webhook_id, progress, attempts)

    def _headers(self, hook: WebhookRow, event: LoggedEvent) -> dict[str, str]:
        return {
            "Content-Type": "application/json",
            "X-Alertwire-Event-Id": event.id,
            signatures.HEADER: signatures.sign(hook.secret, int(self.clock()), event.payload),
        }

    def _attempted(
        self, hook: WebhookRow, log: str, event: LoggedEvent, result: SendResult
    ) -> tuple[WebhookRow, DeliveryAttempt]:
        """The endpoint after an attempt (not saved yet), and the attempt's record."""
        now = self.clock()
        number = hook.attempt + 1
        status = "delivered" if result.ok else "failed"
        attempt = DeliveryAttempt(
            hook.webhook_id, event.id, number, status, result.http_status, result.error, now
        )
        if result.ok:
            self.delivered += 1
            moved = _moved(hook, log, event.seq)
            return replace(
                moved, attempt=0, next_attempt_ts=now, failing_since=None, retrying_device=False
            ), attempt
        since = hook.failing_since if hook.failing_since is not None else now
        return replace(
            hook,
            attempt=number,
            next_attempt_ts=now + backoff(number),
            failing_since=since,
            enabled=now - since < FAILURE_WINDOW_S,
            retrying_device=log == _DEVICES,
        ), attempt

    async def _tell_if_disabled(self, hook: WebhookRow) -> None:
        if hook.enabled:
            return
        try:
            await self.on_endpoint_disabled(hook.hospital_id, hook.webhook_id)
        except Exception:
            log.exception("the disabled-webhook callback failed")


def _event_type(payload: bytes) -> str:
    value = orjson.loads(payload).get("type")
    return value if isinstance(value, str) else ""


def _moved(hook: WebhookRow, log: str, seq: int) -> WebhookRow:
    """The endpoint with the cursor of `log` past position `seq`."""
    if log == _ALERTS:
        return replace(hook, cursor=seq)
    return replace(hook, device_cursor=seq)
