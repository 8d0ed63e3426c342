"""services/escalation.py (EscalationPolicy) with an injected clock and `run_due()`: nothing
sleeps. An active alert past its priority's target escalates as "system", once per period;
acknowledged and resolved alerts do not; the schedule survives a restart."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import pytest

from rpc.connections import ConnectionRegistry
from rpc.errors import ErrorCode, RpcError
from schemas.alerts import AlertEvent, Priority, UpdateAlertInput
from services.alerts import AlertService
from services.config import DomainConfig, parse_targets
from services.container import Services
from services.escalation import RETRY_S
from services.store import StoredEvent
from tests.services.conftest import FakeClock, alert_input, decode
from tests.services.stores import Backend

CRITICAL = 60.0  # the default targets
LOW = 3600.0


async def events_of(services: Services, alert_id: str) -> list[AlertEvent]:
    return [decode(e) for e in await services.store.events_after("h1", 0, 1000, alert_id)]


async def level(services: Services, alert_id: str) -> int:
    return (await services.alerts.get(alert_id)).alert.escalation_level


async def raise_alert(services: Services, priority: Priority) -> str:
    return (await services.alerts.create(alert_input(priority=priority), "device-7")).id


async def test_an_unanswered_alert_escalates_once_per_period_as_system(
    services: Services, clock: FakeClock
) -> None:
    alert_id = await raise_alert(services, "critical")
    clock.advance(CRITICAL - 1)
    assert await services.escalation.run_due() == 0
    clock.advance(1)
    assert await services.escalation.run_due() == 1
    assert await services.escalation.run_due() == 0  # not twice for one period
    clock.advance(CRITICAL - 1)
    assert await services.escalation.run_due() == 0
    clock.advance(1)
    assert await services.escalation.run_due() == 1
    clock.advance(10 * CRITICAL)  # a long stall still escalates one level per run
    assert await services.escalation.run_due() == 1

    events = await events_of(services, alert_id)
    escalations = [e for e in events if e.type == "alert.escalated"]
    assert [(e.actor_id, e.alert.escalation_level, e.alert.status) for e in escalations] == [
        ("system", 1, "active"),
        ("system", 2, "active"),
        ("system", 3, "active"),
    ]
    assert await level(services, alert_id) == 3


async def test_acknowledged_and_resolved_alerts_do_not_escalate(
    services: Services, clock: FakeClock
) -> None:
    acked = await raise_alert(services, "critical")
    resolved = await raise_alert(services, "critical")
    await services.alerts.acknowledge(acked, "nurse-1", None)
    await services.alerts.resolve(resolved, "nurse-1", None)
    clock.advance(10 * CRITICAL)
    assert await services.escalation.run_due() == 0
    assert (await level(services, acked), await level(services, resolved)) == (0, 0)
    assert await services.store.escalations_due() == []

    # Escalated by hand, the acknowledgement no longer stands: the next tier's clock runs.
    await services.alerts.escalate(acked, "nurse-1", "needs a physician")
    clock.advance(CRITICAL)
    assert await services.escalation.run_due() == 1
    assert [
        e.actor_id for e in await events_of(services, acked) if e.type == "alert.escalated"
    ] == [
        "nurse-1",
        "system",
    ]


async def test_raising_the_priority_brings_the_escalation_forward(
    services: Services, clock: FakeClock
) -> None:
    alert_id = await raise_alert(services, "low")
    clock.advance(10)
    await services.alerts.update(UpdateAlertInput(alert_id=alert_id, priority="critical"), "c-1")
    clock.advance(CRITICAL - 1)
    assert await services.escalation.run_due() == 0
    clock.advance(1)  # 60 s after the update, long before the low target
    assert await services.escalation.run_due() == 1
    assert await level(services, alert_id) == 1


async def test_lowering_the_priority_never_postpones_it(
    services: Services, clock: FakeClock
) -> None:
    alert_id = await raise_alert(services, "critical")
    clock.advance(10)
    await services.alerts.update(UpdateAlertInput(alert_id=alert_id, priority="low"), "c-1")
    clock.advance(CRITICAL - 10)
    assert await services.escalation.run_due() == 1
    clock.advance(CRITICAL)  # the next period follows the new, lower priority
    assert await services.escalation.run_due() == 0
    clock.advance(LOW - CRITICAL)
    assert await services.escalation.run_due() == 1


async def test_the_schedule_survives_a_restart(config: DomainConfig, clock: FakeClock) -> None:
    first = await Services.open(config, ConnectionRegistry(), clock=clock, background=False)
    try:
        due = await raise_alert(first, "critical")
        later = await raise_alert(first, "low")
        acked = await raise_alert(first, "critical")
        await first.alerts.acknowledge(acked, "nurse-1", None)
    finally:
        await first.close()

    clock.advance(CRITICAL)
    second = await Services.open(config, ConnectionRegistry(), clock=clock, background=False)
    try:
        assert second.escalation.pending == 2  # rebuilt by load(): the two active alerts
        assert await second.escalation.run_due() == 1
        assert [
            e.actor_id for e in await events_of(second, due) if e.type == "alert.escalated"
        ] == ["system"]
        assert (await level(second, later), await level(second, acked)) == (0, 0)
        clock.advance(LOW)
        assert await second.escalation.run_due() == 2  # `later`, and `due` once more
    finally:
        await second.close()


async def test_configured_targets_drive_escalation(backend: Backend, clock: FakeClock) -> None:
    config = backend.config(targets=parse_targets("critical=5, high=20"))
    services = await Services.open(config, ConnectionRegistry(), clock=clock, background=False)
    try:
        critical = await raise_alert(services, "critical")
        high = await raise_alert(services, "high")
        clock.advance(5)
        assert await services.escalation.run_due() == 1
        assert await level(services, critical) == 1
        clock.advance(15)
        assert await services.escalation.run_due() == 2  # high at 20 s, critical again
        assert await level(services, high) == 1
    finally:
        await services.close()


async def test_a_failed_escalation_is_retried(
    services: Services, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    alert_id = await raise_alert(services, "critical")
    calls: list[str] = []
    real = AlertService.escalate_if_due

    async def flaky(self: AlertService, alert_id: str) -> object:
        calls.append(alert_id)
        if len(calls) == 1:
            raise RuntimeError("storage hiccup")
        return await real(self, alert_id)

    monkeypatch.setattr(AlertService, "escalate_if_due", flaky)
    clock.advance(CRITICAL)
    assert await services.escalation.run_due() == 0
    assert await level(services, alert_id) == 0
    clock.advance(5)
    assert await services.escalation.run_due() == 1
    assert calls == [alert_id, alert_id]
    assert await level(services, alert_id) == 1


async def test_an_alert_whose_caller_went_away_after_the_commit_still_escalates(
    services: Services, clock: FakeClock
) -> None:
    """The caller is cancelled between the commit and its own resumption (at the moment the
    store publishes): the alert is committed, and the policy has heard of it all the same."""
    publish = services.store.on_commit
    caller: list[asyncio.Task[object]] = []

    def publish_then_cancel_the_caller(events: Sequence[StoredEvent]) -> None:
        publish(events)
        caller[0].cancel()

    services.store.on_commit = publish_then_cancel_the_caller
    task = asyncio.create_task(services.alerts.create(alert_input(priority="critical"), "dev-1"))
    caller.append(task)
    with pytest.raises(asyncio.CancelledError):
        await task
    services.store.on_commit = publish
    (committed,) = await services.store.newest_events("h1", 10)
    clock.advance(CRITICAL)
    assert await services.escalation.run_due() == 1
    assert await level(services, committed.alert_id) == 1


# --- in a cluster: alerts raised elsewhere, early entries, lost races --------------------------


async def test_an_alert_heard_of_from_elsewhere_is_scheduled(
    services: Services, clock: FakeClock
) -> None:
    """Raised through another writer (not watched by this policy): nothing is scheduled until
    its event is heard, and then it escalates at its due time, not before."""
    elsewhere = AlertService(services.store, dict(services.alerts.targets), clock)
    alert = await elsewhere.create(alert_input(priority="critical"), "device-7")
    clock.advance(CRITICAL)
    assert await services.escalation.run_due() == 0  # not heard of yet
    clock.advance(-CRITICAL)

    services.escalation.heard(alert.id, "active", "critical", clock())
    services.escalation.heard(alert.id, "acknowledged", "critical", clock())  # not due
    assert services.escalation.pending == 1
    clock.advance(CRITICAL - 1)
    assert await services.escalation.run_due() == 0
    clock.advance(1.01)
    assert await services.escalation.run_due() == 1


async def test_a_due_time_heard_twice_is_scheduled_once(
    services: Services, clock: FakeClock
) -> None:
    alert_id = await raise_alert(services, "critical")  # scheduled as staged
    assert services.escalation.pending == 1
    services.escalation.heard(alert_id, "active", "critical", clock())  # its own event
    assert services.escalation.pending == 1


async def test_an_entry_that_wakes_early_is_put_back_at_the_committed_due(
    services: Services, clock: FakeClock
) -> None:
    alert_id = await raise_alert(services, "critical")
    services.escalation.schedule(alert_id, clock() + 1)  # an estimate from a skewed clock
    clock.advance(1)
    assert await services.escalation.run_due() == 0
    assert services.escalation.pending == 1  # the right entry is still there (not duplicated)
    clock.advance(CRITICAL - 1)
    assert await services.escalation.run_due() == 1


async def test_a_lost_race_is_retried_without_a_traceback(
    services: Services,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    alert_id = await raise_alert(services, "critical")
    real = AlertService.escalate_if_due
    calls = 0

    async def busy_once(self: AlertService, alert_id: str) -> object:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RpcError(ErrorCode.CONFLICT, "The alert stream is busy; retry")
        return await real(self, alert_id)

    monkeypatch.setattr(AlertService, "escalate_if_due", busy_once)
    clock.advance(CRITICAL)
    with caplog.at_level(logging.WARNING, logger="alertwire.escalation"):
        assert await services.escalation.run_due() == 0
    assert [r.exc_info for r in caplog.records] == [None]
    assert "CONFLICT" in caplog.records[0].getMessage()
    clock.advance(RETRY_S)
    assert await services.escalation.run_due() == 1
    assert await level(services, alert_id) == 1
