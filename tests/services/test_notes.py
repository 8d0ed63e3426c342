"""Alert notes and the audit trail on both stores: a note is an `alert.noted` event in the
alert's stream, ordered with the others and replayed on resume; the audit trail reads every
event back with actor, time and text, also from a store opened again (a restart)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import pytest

from rpc.connections import ConnectionRegistry
from schemas.alerts import UpdateAlertInput
from services.config import DomainConfig
from services.container import Services
from services.lifecycle import iso
from services.store import format_event_id
from tests.services.conftest import FakeClock, alert_input, decode
from tests.services.stores import Backend

NOTE = "Patient says the pain moved to the left arm.\nInformed Dr Lee."


async def test_a_note_is_an_event_of_the_alert_stream_in_order(
    services: Services, clock: FakeClock
) -> None:
    alert = await services.alerts.create(alert_input(), "device-7")
    await services.alerts.acknowledge(alert.id, "nurse-1", "on my way")
    clock.advance(5)
    noted = await services.alerts.add_note(alert.id, "nurse-1", NOTE)
    await services.alerts.resolve(alert.id, "nurse-1", "settled")
    assert noted.type == "alert.noted"
    assert noted.note == NOTE
    assert noted.actor_id == "nurse-1"
    assert noted.occurred_at == iso(clock())
    assert (noted.alert.version, noted.alert.status) == (3, "acknowledged")
    log = [decode(e) for e in await services.store.events_after("h1", 0, 100)]
    assert [e.type for e in log] == [
        "alert.created",
        "alert.acknowledged",
        "alert.noted",
        "alert.resolved",
    ]
    assert log[2] == noted  # what the caller got is what subscribers get
    assert [e.note for e in log] == [None, None, NOTE, None]
    # replay from just before the note gives it again, then what followed
    replayed = await services.store.events_after("h1", int(log[1].id), 100, alert.id)
    assert [decode(e).type for e in replayed] == ["alert.noted", "alert.resolved"]


async def test_a_resolved_alert_still_takes_notes(services: Services) -> None:
    alert = await services.alerts.create(alert_input(), "device-7")
    await services.alerts.resolve(alert.id, "nurse-1", None)
    noted = await services.alerts.add_note(alert.id, "nurse-2", "Family informed")
    assert noted.alert.status == "resolved"
    assert noted.alert.resolved_by == "nurse-1"


async def test_a_note_on_an_unknown_alert_is_not_found(services: Services) -> None:
    from rpc.errors import ErrorCode, RpcError

    with pytest.raises(RpcError) as caught:
        await services.alerts.add_note("al_missing", "nurse-1", "x")
    assert caught.value.code is ErrorCode.NOT_FOUND


async def test_the_audit_trail_survives_a_restart(
    backend: Backend, config: DomainConfig, services: Services, clock: FakeClock
) -> None:
    alert = await services.alerts.create(alert_input(priority="critical"), "device-7")
    steps: list[Callable[[], Awaitable[object]]] = [
        lambda: services.alerts.acknowledge(alert.id, "nurse-1", "on my way"),
        lambda: services.alerts.add_note(alert.id, "nurse-1", NOTE),
        lambda: services.alerts.escalate(alert.id, "nurse-1", "needs a physician"),
        lambda: services.alerts.update(UpdateAlertInput(alert_id=alert.id, title="x"), "cn-1"),
        lambda: services.alerts.resolve(alert.id, "doc-2", "stabilised"),
    ]
    times = [clock()]
    for step in steps:
        clock.advance(30)
        times.append(clock())
        await step()
    other = await services.alerts.create(alert_input(), "device-7")
    await services.alerts.add_note(other.id, "nurse-3", "not this alert's")
    before = await services.audit.trail(alert.id)
    reopened = await Services.open(config, ConnectionRegistry(), clock=clock, background=False)
    try:
        rows = await reopened.audit.trail(alert.id)
    finally:
        await reopened.close()
    assert rows == before
    assert [(r.type, r.actor_id, r.occurred_at, r.detail) for r in rows] == [
        ("alert.created", "device-7", iso(times[0]), None),
        ("alert.acknowledged", "nurse-1", iso(times[1]), "on my way"),
        ("alert.noted", "nurse-1", iso(times[2]), NOTE),
        ("alert.escalated", "nurse-1", iso(times[3]), "needs a physician"),
        ("alert.updated", "cn-1", iso(times[4]), None),
        ("alert.resolved", "doc-2", iso(times[5]), "stabilised"),
    ]
    ids = [r.event_id for r in rows]
    assert ids == sorted(ids)
    assert ids[0] == format_event_id(1)


async def test_a_note_is_never_logged(services: Services, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    alert = await services.alerts.create(alert_input(), "device-7")
    await services.alerts.add_note(alert.id, "nurse-1", "SECRET-CLINICAL-TEXT")
    await services.audit.trail(alert.id)
    assert "SECRET-CLINICAL-TEXT" not in caplog.text
