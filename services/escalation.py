"""The escalation policy: an active alert not acknowledged within its priority's target
escalates by itself, as the system actor, once per period.

Due times live in the store (`escalation_due`), so the schedule survives a restart: `start`
rebuilds it from there. One heap of (due, alert id) and one task serve every alert; an entry
whose alert changed meanwhile is harmless, because `AlertService.escalate_if_due` checks the
committed state inside the transaction. Tests drive it with an injected clock through
`run_due()`, without sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import time
from collections.abc import Callable

from services.alerts import AlertService
from services.store import AlertRecord, AlertStore

log = logging.getLogger("alertwire.escalation")

MAX_WAIT_S = 60.0  # re-read the clock at least this often (wall-clock jumps)


class EscalationPolicy:
    def __init__(
        self, alerts: AlertService, store: AlertStore, clock: Callable[[], float] = time.time
    ) -> None:
        self.alerts = alerts
        self.store = store
        self.clock = clock
        self._heap: list[tuple[float, str]] = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        alerts.watch(self.observe)

    def observe(self, record: AlertRecord) -> None:
        if record.escalation_due is not None and record.alert.status == "active":
            self.schedule(record.alert.id, record.escalation_due)

    def schedule(self, alert_id: str, due: float) -> None:
        earliest = self._heap[0][0] if self._heap else None
        heapq.heappush(self._heap, (due, alert_id))
        if earliest is None or due < earliest:
            self._wakeup.set()

    @property
    def pending(self) -> int:
        return len(self._heap)

    async def load(self) -> int:
        """Rebuild the schedule from the store (at start-up)."""
        due = await self.store.escalations_due()
        for alert_id, when in due:
            self.schedule(alert_id, when)
        return len(due)

    async def run_due(self) -> int:
        """Escalate every alert whose time has come; returns how many escalated."""
        escalated = 0
        now = self.clock()
        while self._heap and self._heap[0][0] <= now:
            _, alert_id = heapq.heappop(self._heap)
            try:
                if await self.alerts.escalate_if_due(alert_id) is not None:
                    escalated += 1
            except Exception:
                log.exception("automatic escalation failed; will retry")
                heapq.heappush(self._heap, (now + 5.0, alert_id))
                break
        return escalated

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
        while True:
            await self.run_due()
            wait = MAX_WAIT_S
            if self._heap:
                wait = min(wait, max(0.0, self._heap[0][0] - self.clock()))
            self._wakeup.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), wait)
