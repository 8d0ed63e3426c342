"""The escalation policy: an active alert not acknowledged within its priority's target
escalates by itself, as the system actor, once per period.

Due times live in the store (`escalation_due`), so the schedule survives a restart: `start`
rebuilds it from there. One heap of (due, alert id) and one task serve every alert; an entry
whose alert changed meanwhile is harmless, because `AlertService.escalate_if_due` checks the
committed state inside the transaction, and an entry that woke too early is put back at the
committed due time. Tests drive it with an injected clock through `run_due()`, without
sleeping.

In a cluster every node schedules every alert, and exactly one escalates it per period
(CONTRACT 7). Each node hears of alerts changed elsewhere through the cluster's events
(`heard`, wired by services/container.py) and, as a backstop for an event it missed, reloads
the schedule from the store every `reload_s`. When the moment comes, every node tries
`escalate_if_due`; its change is conditional on the alert's version, so the first commit wins
and the others' batches run again on the committed state, where the alert is no longer due:
they escalate nothing, and nothing is logged as an error.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import time
from collections.abc import Callable

from rpc.errors import RpcError
from schemas.alerts import Priority
from services.alerts import AlertService
from services.store import AlertRecord, AlertStore

log = logging.getLogger("alertwire.escalation")

MAX_WAIT_S = 60.0  # re-read the clock at least this often (wall-clock jumps)
RETRY_S = 5.0  # an escalation that failed is tried again this much later
# Event times are written to the millisecond, cut short: an estimate from one is this much
# later, so that it is never before the due time the store holds.
EVENT_TIME_PRECISION_S = 0.001
SAME_DUE_S = 0.01  # a due time heard twice (staged here, then its event) is scheduled once


class EscalationPolicy:
    def __init__(
        self,
        alerts: AlertService,
        store: AlertStore,
        clock: Callable[[], float] = time.time,
        reload_s: float | None = None,
    ) -> None:
        self.alerts = alerts
        self.store = store
        self.clock = clock
        self.reload_s = reload_s  # None on one node: it hears every change it makes
        self._heap: list[tuple[float, str]] = []
        self._dues: dict[str, list[float]] = {}  # each alert's due times in the heap
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        alerts.watch(self.observe)

    def observe(self, record: AlertRecord) -> None:
        if record.escalation_due is not None and record.alert.status == "active":
            self.schedule(record.alert.id, record.escalation_due)

    def heard(self, alert_id: str, status: str, priority: Priority, occurred_ts: float) -> None:
        """A committed change from the cluster's events (any node's). After a create or an
        escalation the alert is due its priority's target after the event; after an update it
        is due no later than that (and the create or escalation before it scheduled the
        earlier time)."""
        if status == "active":
            target = self.alerts.targets[priority]
            self.schedule(alert_id, occurred_ts + target + EVENT_TIME_PRECISION_S)

    def schedule(self, alert_id: str, due: float) -> None:
        dues = self._dues.setdefault(alert_id, [])
        if any(abs(pending - due) < SAME_DUE_S for pending in dues):
            return
        dues.append(due)
        earliest = self._heap[0][0] if self._heap else None
        heapq.heappush(self._heap, (due, alert_id))
        if earliest is None or due < earliest:
            self._wakeup.set()

    @property
    def pending(self) -> int:
        return len(self._heap)

    async def load(self) -> int:
        """Rebuild the schedule from the store (at start-up, and in a cluster every
        `reload_s`)."""
        due = await self.store.escalations_due()
        for alert_id, when in due:
            self.schedule(alert_id, when)
        return len(due)

    async def run_due(self) -> int:
        """Escalate every alert whose time has come; returns how many escalated."""
        escalated = 0
        now = self.clock()
        while self._heap and self._heap[0][0] <= now:
            due, alert_id = heapq.heappop(self._heap)
            self._popped(alert_id, due)
            try:
                if await self.alerts.escalate_if_due(alert_id) is not None:
                    escalated += 1
                else:
                    await self._put_back(alert_id, now)
            except RpcError as exc:  # storage away, or a race lost too often: expected
                log.warning("automatic escalation deferred (%s); will retry", exc.code.name)
                self.schedule(alert_id, now + RETRY_S)
                break
            except Exception:
                log.exception("automatic escalation failed; will retry")
                self.schedule(alert_id, now + RETRY_S)
                break
        return escalated

    def _popped(self, alert_id: str, due: float) -> None:
        dues = self._dues.get(alert_id)
        if dues is not None:
            dues.remove(due)
            if not dues:
                del self._dues[alert_id]

    async def _put_back(self, alert_id: str, now: float) -> None:
        """An entry that found its alert not yet due (scheduled from an estimate, or another
        node escalated it first) is scheduled again at the committed due time."""
        record = await self.store.get(alert_id)
        if record is None or record.alert.status != "active":
            return
        if record.escalation_due is not None and record.escalation_due > now:
            self.schedule(alert_id, record.escalation_due)

    async def start(self) -> None:
        await self.load()
        self._task = asyncio.create_task(self._run_forever(), name="escalation-policy")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run_forever(self) -> None:
        reload_at = None if self.reload_s is None else self.clock() + self.reload_s
        while True:
            await self.run_due()
            if reload_at is not None and self.clock() >= reload_at:
                await self._reload()
                reload_at = self.clock() + (self.reload_s or MAX_WAIT_S)
            wait = MAX_WAIT_S
            if reload_at is not None:
                wait = min(wait, max(0.0, reload_at - self.clock()))
            if self._heap:
                wait = min(wait, max(0.0, self._heap[0][0] - self.clock()))
            self._wakeup.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), wait)

    async def _reload(self) -> None:
        try:
            await self.load()
        except Exception as exc:  # the store is away: the next round tries again
            log.warning("reloading the escalation schedule failed (%s)", type(exc).__name__)
