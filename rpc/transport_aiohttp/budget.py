"""The server-wide outbound budget (CONTRACT 5a, SEND_QUEUE_TOTAL_BYTES)."""

from __future__ import annotations

import logging
from typing import Protocol

from rpc.metrics import Metrics

log = logging.getLogger("alertwire.transport")


class Member(Protocol):
    """A connection's outbound side, as the budget sees it (rpc.transport_aiohttp.outbound)."""

    charged: int

    @property
    def closing(self) -> bool: ...

    def backlog(self) -> int: ...

    def overflow(self) -> None: ...


class OutboundBudget:
    """Outbound bytes of all connections together (CONTRACT 5a, SEND_QUEUE_TOTAL_BYTES).

    Connections charge their backlog as it changes where they already look at it (a queued
    frame, a flush); a charge can be stale high for a socket that drained since its last write,
    so passing the limit first re-measures every connection, and only a real excess closes
    connections, the largest backlog first, until the total is back under the limit."""

    def __init__(self, limit_bytes: int, metrics: Metrics) -> None:
        self.limit = limit_bytes
        self.charged = 0
        self.shedding = False
        self._metrics = metrics
        self._members: set[Member] = set()

    def join(self, out: Member) -> None:
        self._members.add(out)

    def leave(self, out: Member) -> None:
        self._members.discard(out)

    def shed(self) -> None:
        if self.shedding:
            return
        self.shedding = True
        try:
            measured = [(out.backlog(), out) for out in self._members if not out.closing]
            for size, out in measured:
                out.charged = size
            self.charged = sum(out.charged for out in self._members)
            for size, out in sorted(measured, key=lambda item: item[0], reverse=True):
                if self.charged <= self.limit:
                    break
                self._metrics.outbound_budget_closes.inc()
                out.overflow()  # charges 0 for it
                log.info("closed a connection %d bytes behind: outbound budget passed", size)
        finally:
            self.shedding = False
        self._metrics.outbound_queued_bytes.set(self.charged)
