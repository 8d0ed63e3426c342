"""services/lifecycle.py: every cell of CONTRACT 4's lifecycle table, as pure functions, and the
service-level promise of an idempotent repeat (nothing committed, nothing published)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from rpc.errors import ErrorCode, RpcError
from schemas.alerts import Alert, AlertStatus, UpdateAlertInput
from services import lifecycle
from services.container import Services
from services.store import StoredEvent
from tests.services.conftest import T0, FakeClock, alert_input, decode, parse_iso

CREATED = T0
CHANGED = T0 + 42.5
NOW = T0 + 100.25
ACTOR = "nurse-1"
OTHER = "nurse-2"


def alert_in(status: AlertStatus, by: str = ACTOR) -> Alert:
    alert = lifecycle.create("al_1", alert_input(priority="medium"), "device-7", CREATED).alert
    if status != "active":
        change = lifecycle.acknowledge(alert, by, CHANGED)
        assert change is not None
        alert = change.alert
    if status == "resolved":
        alert = lifecycle.resolve(alert, by, CHANGED).alert
    assert alert.status == status
    return alert


def assert_changed(before: Alert, after: Alert, **expected: Any) -> None:
    """`after` is `before` with exactly `expected` changed, one version later, stamped NOW."""
    assert after.version == before.version + 1
    assert parse_iso(after.updated_at) == pytest.approx(NOW, abs=1e-3)
    untouched = set(Alert.model_fields) - {"version", "updated_at", *expected}
    assert {f: getattr(after, f) for f in untouched} == {f: getattr(before, f) for f in untouched}
    assert {f: getattr(after, f) for f in expected} == expected


def assert_conflict(exc: pytest.ExceptionInfo[RpcError], alert: Alert) -> None:
    assert exc.value.code is ErrorCode.CONFLICT
    assert exc.value.data["status"] == alert.status
    assert exc.value.data["alertId"] == alert.id
    assert exc.value.to_dict("jsonrpc")["data"]["status"] == alert.status


def test_create_starts_active_at_version_one_with_utc_times() -> None:
    change = lifecycle.create("al_9", alert_input(priority="critical"), "device-7", CREATED)
    alert = change.alert
    assert change.event_type == "alert.created"
    assert (alert.status, alert.escalation_level, alert.version) == ("active", 0, 1)
    assert (alert.priority, alert.created_by, alert.hospital_id) == ("critical", "device-7", "h1")
    assert parse_iso(alert.created_at) == pytest.approx(CREATED, abs=1e-3)
    assert alert.updated_at == alert.created_at
    assert alert.acknowledged_at is alert.resolved_at is alert.assigned_to is None


@pytest.mark.parametrize(
    ("ts", "text"),
    [(0.0, "1970-01-01T00:00:00.000Z"), (1_700_000_000.1234, "2023-11-14T22:13:20.123Z")],
)
def test_iso_is_utc_with_milliseconds_and_z(ts: float, text: str) -> None:
    assert lifecycle.iso(ts) == text


# --- acknowledge ------------------------------------------------------------------------------


def test_acknowledge_active() -> None:
    before = alert_in("active")
    change = lifecycle.acknowledge(before, ACTOR, NOW)
    assert change is not None
    assert change.event_type == "alert.acknowledged"
    assert_changed(
        before,
        change.alert,
        status="acknowledged",
        acknowledged_by=ACTOR,
        acknowledged_at=lifecycle.iso(NOW),
    )


def test_acknowledge_again_by_the_same_actor_is_no_change() -> None:
    assert lifecycle.acknowledge(alert_in("acknowledged", by=ACTOR), ACTOR, NOW) is None


def test_acknowledge_by_someone_else_is_conflict() -> None:
    alert = alert_in("acknowledged", by=ACTOR)
    with pytest.raises(RpcError) as exc:
        lifecycle.acknowledge(alert, OTHER, NOW)
    assert_conflict(exc, alert)
    assert exc.value.data["status"] == "acknowledged"


# --- escalate ---------------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["active", "acknowledged"])
def test_escalate_raises_the_level_and_clears_the_acknowledgement(status: AlertStatus) -> None:
    before = alert_in(status)
    change = lifecycle.escalate(before, OTHER, NOW)
    assert change.event_type == "alert.escalated"
    assert_changed(
        before,
        change.alert,
        status="active",
        escalation_level=before.escalation_level + 1,
        acknowledged_by=None,
        acknowledged_at=None,
    )
    again = lifecycle.escalate(change.alert, OTHER, NOW)
    assert (again.alert.escalation_level, again.alert.version) == (2, before.version + 2)


# --- update -----------------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["active", "acknowledged"])
def test_update_changes_fields_and_keeps_status(status: AlertStatus) -> None:
    before = alert_in(status)
    data = UpdateAlertInput(
        alert_id=before.id, priority="critical", title="Fall, bed 4", assigned_to="nurse-9"
    )
    change = lifecycle.update(before, data, NOW)
    assert change is not None
    assert change.event_type == "alert.updated"
    assert_changed(
        before, change.alert, priority="critical", title="Fall, bed 4", assigned_to="nurse-9"
    )
    assert change.alert.status == status


@pytest.mark.parametrize("status", ["active", "acknowledged"])
def test_update_to_the_same_values_is_no_change(status: AlertStatus) -> None:
    before = alert_in(status)
    unchanged = UpdateAlertInput(alert_id=before.id, priority=before.priority, title=before.title)
    assert lifecycle.update(before, unchanged, NOW) is None
    assert lifecycle.update(before, UpdateAlertInput(alert_id=before.id), NOW) is None


def test_update_can_assign_after_an_assignment() -> None:
    first = lifecycle.update(
        alert_in("active"), UpdateAlertInput(alert_id="al_1", assigned_to="a"), NOW
    )
    assert first is not None
    second = lifecycle.update(first.alert, UpdateAlertInput(alert_id="al_1", assigned_to="b"), NOW)
    assert second is not None
    assert (second.alert.assigned_to, second.alert.version) == ("b", first.alert.version + 1)
    same = UpdateAlertInput(alert_id="al_1", assigned_to="b")
    assert lifecycle.update(second.alert, same, NOW) is None


# --- resolve ----------------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["active", "acknowledged"])
def test_resolve(status: AlertStatus) -> None:
    before = alert_in(status)
    change = lifecycle.resolve(before, OTHER, NOW)
    assert change.event_type == "alert.resolved"
    assert_changed(
        before, change.alert, status="resolved", resolved_by=OTHER, resolved_at=lifecycle.iso(NOW)
    )


# --- anything on a resolved alert -------------------------------------------------------------

ON_RESOLVED: dict[str, Callable[[Alert], object]] = {
    "acknowledge by the resolver": lambda a: lifecycle.acknowledge(a, ACTOR, NOW),
    "acknowledge by another": lambda a: lifecycle.acknowledge(a, OTHER, NOW),
    "escalate": lambda a: lifecycle.escalate(a, ACTOR, NOW),
    "update": lambda a: lifecycle.update(a, UpdateAlertInput(alert_id=a.id, title="x"), NOW),
    "no-op update": lambda a: lifecycle.update(a, UpdateAlertInput(alert_id=a.id), NOW),
    "resolve": lambda a: lifecycle.resolve(a, ACTOR, NOW),
}


@pytest.mark.parametrize("action", sorted(ON_RESOLVED))
def test_anything_on_a_resolved_alert_is_conflict(action: str) -> None:
    alert = alert_in("resolved")
    with pytest.raises(RpcError) as exc:
        ON_RESOLVED[action](alert)
    assert_conflict(exc, alert)
    assert exc.value.data["status"] == "resolved"


# --- through the service: an idempotent repeat commits and publishes nothing ------------------


class Heard:
    def __init__(self, services: Services) -> None:
        self.events: list[StoredEvent] = []
        services.subscriptions.on(self.events.append)


async def test_repeat_acknowledge_commits_and_publishes_nothing(
    services: Services, clock: FakeClock
) -> None:
    created = await services.alerts.create(alert_input(), "device-7")
    clock.advance(5)
    acked = await services.alerts.acknowledge(created.id, ACTOR, "on my way")
    heard = Heard(services)
    positions = await services.store.positions("h1")
    clock.advance(5)

    again = await services.alerts.acknowledge(created.id, ACTOR, "still on my way")

    assert again == acked
    assert heard.events == []
    assert await services.store.positions("h1") == positions
    record = await services.store.get(created.id)
    assert record is not None
    assert record.alert == acked
    with pytest.raises(RpcError) as exc:
        await services.alerts.acknowledge(created.id, OTHER, None)
    assert_conflict(exc, acked)
    assert heard.events == []


async def test_no_op_update_commits_and_publishes_nothing(services: Services) -> None:
    created = await services.alerts.create(alert_input(priority="low"), "device-7")
    heard = Heard(services)
    positions = await services.store.positions("h1")

    same = UpdateAlertInput(alert_id=created.id, priority="low", title=created.title)
    assert await services.alerts.update(same, "charge-1") == created

    assert heard.events == []
    assert await services.store.positions("h1") == positions


async def test_each_change_raises_the_version_by_exactly_one(
    services: Services, clock: FakeClock
) -> None:
    heard = Heard(services)
    alert = await services.alerts.create(alert_input(), "device-7")
    steps: list[Callable[[], Awaitable[Alert]]] = [
        lambda: services.alerts.acknowledge(alert.id, ACTOR, None),
        lambda: services.alerts.escalate(alert.id, OTHER, "no answer"),
        lambda: services.alerts.update(
            UpdateAlertInput(alert_id=alert.id, assigned_to="nurse-3"), "charge-1"
        ),
        lambda: services.alerts.acknowledge(alert.id, "nurse-3", None),
        lambda: services.alerts.resolve(alert.id, "nurse-3", "settled"),
    ]
    versions = [alert.version]
    for step in steps:
        clock.advance(1)
        changed = await step()
        versions.append(changed.version)
        assert parse_iso(changed.updated_at) == pytest.approx(clock.now, abs=1e-3)
    assert versions == list(range(1, len(steps) + 2))
    events = [decode(e) for e in heard.events]
    assert [e.alert.version for e in events] == versions
    for event in events:  # the event's time is the change's, in the same ISO form
        assert parse_iso(event.occurred_at) == parse_iso(event.alert.updated_at)
