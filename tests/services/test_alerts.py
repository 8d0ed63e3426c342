"""services/alerts.py (AlertService) against a real SQLite file: what callers get back matches
what was committed and published, and concurrent clinicians on the same alerts leave a store
whose event log folds back into exactly the alerts it holds."""

from __future__ import annotations

import asyncio
from collections import defaultdict

import pytest

from rpc.errors import ErrorCode, RpcError
from schemas.alerts import Alert, AlertEvent
from services.container import Services
from services.store import StoredEvent
from tests.services.conftest import FakeClock, alert_input, decode

HOSPITAL = "h1"


async def log_of(services: Services) -> list[AlertEvent]:
    return [decode(e) for e in await services.store.events_after(HOSPITAL, 0, 100_000)]


async def stored(services: Services, alert_id: str) -> Alert:
    record = await services.store.get(alert_id)
    assert record is not None
    return record.alert


async def assert_log_folds_into_the_store(services: Services, alert_ids: list[str]) -> None:
    """Per alert: versions 1..N without a gap, the last event's alert is the stored alert, and
    folding the whole log (last event per alert) gives every alert's final state."""
    folded: dict[str, Alert] = {}
    for event in await log_of(services):
        folded[event.alert_id] = event.alert
    assert sorted(folded) == sorted(alert_ids)
    for alert_id in alert_ids:
        events = [decode(e) for e in await services.store.events_after(HOSPITAL, 0, 1000, alert_id)]
        versions = [e.alert.version for e in events]
        assert versions == list(range(1, len(events) + 1))
        current = await stored(services, alert_id)
        assert events[-1].alert == current
        assert folded[alert_id] == current
        escalations = sum(e.type == "alert.escalated" for e in events)
        assert current.escalation_level == escalations


async def test_create_commits_publishes_and_returns_the_same_alert(
    services: Services, clock: FakeClock
) -> None:
    heard: list[StoredEvent] = []
    services.subscriptions.on(heard.append)
    first = await services.alerts.create(alert_input(priority="critical"), "device-7")
    second = await services.alerts.create(alert_input(priority="low"), "device-7")
    assert first.id != second.id
    assert [decode(e).alert for e in heard] == [first, second]
    assert [decode(e).actor_id for e in heard] == ["device-7", "device-7"]
    assert await stored(services, first.id) == first
    record = await services.alerts.get(first.id)
    assert record.created_ts == clock()
    assert record.responded_ts is None
    assert record.escalation_due == clock() + services.config.targets["critical"]


async def test_unknown_alert_is_not_found_and_commits_nothing(services: Services) -> None:
    calls = [
        services.alerts.get("al_missing"),
        services.alerts.acknowledge("al_missing", "nurse-1", None),
        services.alerts.escalate("al_missing", "nurse-1", None),
        services.alerts.resolve("al_missing", "nurse-1", None),
    ]
    for call in calls:
        with pytest.raises(RpcError) as exc:
            await call
        assert exc.value.code is ErrorCode.NOT_FOUND
        assert exc.value.data == {"alertId": "al_missing"}
    assert await services.store.positions(HOSPITAL) == (0, 0)


async def test_the_first_response_time_is_kept(services: Services, clock: FakeClock) -> None:
    alert = await services.alerts.create(alert_input(), "device-7")
    clock.advance(20)
    await services.alerts.acknowledge(alert.id, "nurse-1", None)
    first_response = clock()
    clock.advance(20)
    await services.alerts.escalate(alert.id, "nurse-1", None)
    clock.advance(20)
    await services.alerts.acknowledge(alert.id, "doctor-1", None)
    await services.alerts.resolve(alert.id, "doctor-1", None)
    record = await services.alerts.get(alert.id)
    assert record.responded_ts == first_response
    assert record.escalation_due is None


async def test_one_acknowledger_wins_each_race(services: Services) -> None:
    alerts = [
        await services.alerts.create(alert_input(title=f"a{i}"), "device-7") for i in range(3)
    ]
    actors = [f"nurse-{i % 7}" for i in range(20)]  # some nurses try more than once

    async def take(alert: Alert, actor: str) -> tuple[str, str, Alert | RpcError]:
        await services.alerts.get(alert.id)  # as the router does: look, then act
        try:
            return alert.id, actor, await services.alerts.acknowledge(alert.id, actor, None)
        except RpcError as exc:
            return alert.id, actor, exc

    outcomes = await asyncio.gather(*(take(alerts[i % 3], actor) for i, actor in enumerate(actors)))

    for alert in alerts:
        mine = [(actor, result) for alert_id, actor, result in outcomes if alert_id == alert.id]
        winners = {actor for actor, result in mine if isinstance(result, Alert)}
        assert len(winners) == 1
        [winner] = winners
        current = await stored(services, alert.id)
        assert (current.status, current.acknowledged_by, current.version) == (
            "acknowledged",
            winner,
            2,
        )
        for actor, result in mine:
            if isinstance(result, Alert):
                assert result == current  # the winner's repeats got it unchanged
            else:
                assert result.code is ErrorCode.CONFLICT
                assert result.data["status"] == "acknowledged"
                assert actor != winner
    await assert_log_folds_into_the_store(services, [a.id for a in alerts])


async def test_concurrent_acknowledges_and_escalations_stay_consistent(
    services: Services,
) -> None:
    alerts = [
        await services.alerts.create(alert_input(title=f"a{i}"), "device-7") for i in range(4)
    ]

    async def clinician(n: int) -> list[tuple[str, str, Alert | RpcError]]:
        """Three rounds of: look at an alert, then acknowledge or escalate it."""
        done: list[tuple[str, str, Alert | RpcError]] = []
        for round_ in range(3):
            alert = alerts[(n + round_) % len(alerts)]
            action = "escalate" if (n + round_) % 3 == 0 else "acknowledge"
            await services.alerts.get(alert.id)
            try:
                if action == "escalate":
                    result: Alert | RpcError = await services.alerts.escalate(
                        alert.id, f"nurse-{n}", "help"
                    )
                else:
                    result = await services.alerts.acknowledge(alert.id, f"nurse-{n}", None)
            except RpcError as exc:
                result = exc
            done.append((action, f"nurse-{n}", result))
        return done

    outcomes = [o for batch in await asyncio.gather(*map(clinician, range(20))) for o in batch]

    for action, actor, result in outcomes:
        if isinstance(result, RpcError):
            assert (action, result.code) == ("acknowledge", ErrorCode.CONFLICT)
            assert result.data["status"] == "acknowledged"
        elif action == "acknowledge":
            assert result.acknowledged_by == actor
        else:
            assert (result.status, result.acknowledged_by) == ("active", None)
    await assert_log_folds_into_the_store(services, [a.id for a in alerts])

    # What each caller got back is an alert state the log committed (never an invention).
    committed = {(e.alert_id, e.alert.version): e.alert for e in await log_of(services)}
    changed = [r for _, _, r in outcomes if isinstance(r, Alert)]
    assert all(committed[(r.id, r.version)] == r for r in changed)

    # Between two escalations of an alert, only one clinician acknowledged it.
    by_alert: dict[str, list[AlertEvent]] = defaultdict(list)
    for event in await log_of(services):
        by_alert[event.alert_id].append(event)
    for events in by_alert.values():
        acks_this_tier = 0
        for event in events:
            if event.type == "alert.escalated":
                acks_this_tier = 0
            elif event.type == "alert.acknowledged":
                acks_this_tier += 1
                assert acks_this_tier == 1
