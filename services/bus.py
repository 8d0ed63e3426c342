"""The event bus seam: how committed alert events reach this node's subscribers.

The store hands each commit's events to `EventBus.committed` (its `on_commit`). On one node
that is all there is: `LocalBus` publishes them to AlertSubscriptionService as they come. In a
cluster on PostgreSQL, `services.bus_postgres.PostgresEventBus` also hears every other node's
commits and puts them all in order (services/sequencer.py).

`health()` adds `"bus": "ok" | "degraded"` to /health where there is a bus to speak of; the
embedded default adds nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from services.store import StoredEvent
from services.subscriptions import AlertSubscriptionService


class EventBus(Protocol):
    def committed(self, events: Sequence[StoredEvent]) -> None:
        """This node's committed events, in commit order (the store's `on_commit`)."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def health(self) -> dict[str, str]: ...


class LocalBus:
    """One process: its commits are the only ones, published as they come."""

    def __init__(self, subscriptions: AlertSubscriptionService) -> None:
        self.committed = subscriptions.publish

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    def health(self) -> dict[str, str]:
        return {}
