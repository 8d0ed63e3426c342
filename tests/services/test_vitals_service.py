"""VitalsService on each store (the `backend` fixture), driven directly with an injected
clock: a breach becomes an alert through AlertService (committed, then published), one open
alert per patient and alert type, rate-limited repeats, re-arming after resolve, hysteresis
and sustained breaches with stored rules, device offline and silence (once across two nodes
on one database)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from rpc.connections import ConnectionRegistry
from schemas.devices import ReportDeviceStatusInput, UpsertRuleInput
from schemas.vitals import ReportVitalsInput
from services.config import DomainConfig
from services.container import Services
from services.store import StoredEvent
from tests.services.conftest import FakeClock, decode

SERVICE = "gateway-1"


def reading(kind: str, value: float, **extra: Any) -> dict[str, Any]:
    return {"kind": kind, "value": value, **extra}


def report(
    *readings: dict[str, Any], patient: str = "p1", device: str = "mon-1"
) -> ReportVitalsInput:
    return ReportVitalsInput.model_validate(
        {"hospitalId": "h1", "patientId": patient, "deviceId": device, "readings": list(readings)}
    )


def heard(services: Services) -> list[StoredEvent]:
    events: list[StoredEvent] = []
    services.subscriptions.on(events.append)
    return events


async def test_a_breach_raises_an_alert_created_by_the_device(services: Services) -> None:
    events = heard(services)
    accepted, alerts = await services.vitals.report(
        report(reading("heart_rate", 80), reading("systolic_bp", 152, unit="mmHg")), SERVICE
    )
    assert accepted == 2
    (alert,) = alerts
    assert alert.type == "vitals.high_bp"
    assert alert.priority == "medium"
    assert alert.patient_id == "p1"
    assert alert.created_by == SERVICE
    assert "152" in alert.title
    assert [decode(e).type for e in events] == ["alert.created"]
    assert decode(events[0]).alert_id == alert.id


async def test_normal_readings_raise_nothing(services: Services) -> None:
    _, alerts = await services.vitals.report(
        report(reading("heart_rate", 72), reading("spo2", 97), reading("temperature", 36.8)),
        SERVICE,
    )
    assert alerts == []


async def test_systolic_and_diastolic_raise_one_alert_between_them(services: Services) -> None:
    _, first = await services.vitals.report(
        report(reading("systolic_bp", 150), reading("diastolic_bp", 95)), SERVICE
    )
    assert len(first) == 1
    _, second = await services.vitals.report(report(reading("diastolic_bp", 96)), SERVICE)
    assert second == []  # open: a repeat within 30 s changes nothing


async def test_repeats_update_at_most_every_30_s(services: Services, clock: FakeClock) -> None:
    events = heard(services)
    _, (alert,) = await services.vitals.report(report(reading("spo2", 88)), SERVICE)
    clock.advance(10)
    assert (await services.vitals.report(report(reading("spo2", 86)), SERVICE))[1] == []
    clock.advance(20)
    _, (updated,) = await services.vitals.report(report(reading("spo2", 84)), SERVICE)
    assert updated.id == alert.id
    assert updated.message is not None
    assert "SpO2 84 %" in updated.message
    clock.advance(5)
    assert (await services.vitals.report(report(reading("spo2", 83)), SERVICE))[1] == []
    assert [decode(e).type for e in events] == ["alert.created", "alert.updated"]


async def test_a_breach_after_resolve_raises_a_new_alert(services: Services) -> None:
    _, (first,) = await services.vitals.report(report(reading("heart_rate", 140)), SERVICE)
    await services.alerts.resolve(first.id, "nurse-1", None)
    _, (second,) = await services.vitals.report(report(reading("heart_rate", 141)), SERVICE)
    assert second.id != first.id
    assert second.status == "active"


async def test_patients_and_types_are_kept_apart(services: Services) -> None:
    _, a = await services.vitals.report(report(reading("heart_rate", 140)), SERVICE)
    _, b = await services.vitals.report(report(reading("heart_rate", 140), patient="p2"), SERVICE)
    _, c = await services.vitals.report(report(reading("heart_rate", 30)), SERVICE)
    assert len({x.id for x in a + b + c}) == 3


async def test_hysteresis_with_a_stored_rule(services: Services) -> None:
    await services.vitals.upsert_rule(
        UpsertRuleInput.model_validate(
            {
                "hospitalId": "h1",
                "ruleId": "default.low_spo2",
                "kind": "spo2",
                "op": "<",
                "value": 90,
                "clearValue": 94,
                "priority": "high",
                "alertType": "vitals.low_spo2",
            }
        )
    )
    _, (first,) = await services.vitals.report(report(reading("spo2", 85)), SERVICE)
    await services.alerts.resolve(first.id, "nurse-1", None)
    assert (await services.vitals.report(report(reading("spo2", 86)), SERVICE))[1] == []
    assert (await services.vitals.report(report(reading("spo2", 92)), SERVICE))[1] == []
    assert (await services.vitals.report(report(reading("spo2", 87)), SERVICE))[1] == []
    await services.vitals.report(report(reading("spo2", 95)), SERVICE)  # re-armed
    _, (second,) = await services.vitals.report(report(reading("spo2", 87)), SERVICE)
    assert second.id != first.id


async def test_sustained_breach_on_server_time(services: Services, clock: FakeClock) -> None:
    await services.vitals.upsert_rule(
        UpsertRuleInput.model_validate(
            {
                "hospitalId": "h1",
                "ruleId": "default.fever",
                "kind": "temperature",
                "op": ">",
                "value": 38.5,
                "sustainSeconds": 60,
                "priority": "medium",
                "alertType": "vitals.fever",
            }
        )
    )
    assert (await services.vitals.report(report(reading("temperature", 39)), SERVICE))[1] == []
    clock.advance(59)
    assert (await services.vitals.report(report(reading("temperature", 39.1)), SERVICE))[1] == []
    clock.advance(1)
    _, (alert,) = await services.vitals.report(report(reading("temperature", 39.2)), SERVICE)
    assert alert.type == "vitals.fever"


async def test_a_deleted_rule_no_longer_fires(services: Services) -> None:
    assert await services.vitals.delete_rule("h1", "default.high_heart_rate")
    assert (await services.vitals.report(report(reading("heart_rate", 150)), SERVICE))[1] == []


async def test_device_offline_raises_a_high_alert_by_the_caller(services: Services) -> None:
    await services.vitals.report(report(reading("heart_rate", 70)), SERVICE)
    device, alert = await services.vitals.report_status(
        ReportDeviceStatusInput(hospital_id="h1", device_id="mon-1", status="offline"), SERVICE
    )
    assert device.status == "offline"
    assert device.patient_id == "p1"
    assert alert is not None
    assert (alert.type, alert.priority, alert.created_by) == ("device.offline", "high", SERVICE)
    # Offline again: no transition, no second alert.
    _, again = await services.vitals.report_status(
        ReportDeviceStatusInput(hospital_id="h1", device_id="mon-1", status="offline"), SERVICE
    )
    assert again is None


async def test_an_unassigned_device_going_offline_raises_nothing(services: Services) -> None:
    _, alert = await services.vitals.report_status(
        ReportDeviceStatusInput(hospital_id="h1", device_id="spare", status="offline"), SERVICE
    )
    assert alert is None


@pytest.fixture
async def second_node(config: DomainConfig, clock: FakeClock) -> AsyncIterator[Services]:
    svc = await Services.open(config, ConnectionRegistry(), clock=clock, background=False)
    try:
        yield svc
    finally:
        await svc.close()


async def test_silence_raises_once_across_nodes(
    services: Services, second_node: Services, clock: FakeClock
) -> None:
    await services.vitals.report(report(reading("heart_rate", 70)), SERVICE)
    clock.advance(services.vitals.silence_s - 1)
    assert await services.vitals.check_silence() == []
    clock.advance(1.5)
    raised = [*await services.vitals.check_silence(), *await second_node.vitals.check_silence()]
    (alert,) = raised
    assert (alert.type, alert.created_by, alert.priority) == ("device.offline", "system", "high")
    assert await services.vitals.check_silence() == []
    (device,) = await services.vitals.store.devices("h1")
    assert device.status == "offline"


async def test_two_nodes_breaching_at_once_raise_one_alert(
    services: Services, second_node: Services
) -> None:
    results = await asyncio.gather(
        services.vitals.report(report(reading("heart_rate", 150)), SERVICE),
        second_node.vitals.report(report(reading("heart_rate", 151)), SERVICE),
    )
    ids = {alert.id for _, alerts in results for alert in alerts}
    assert len(ids) == 1
    # And the next breach on either node sees the open alert: a repeat, not a new alert.
    _, later = await second_node.vitals.report(report(reading("heart_rate", 152)), SERVICE)
    assert later == []


async def test_silence_is_counted_from_the_start_at_the_earliest(
    config: DomainConfig, clock: FakeClock
) -> None:
    first = await Services.open(config, ConnectionRegistry(), clock=clock, background=False)
    await first.vitals.report(report(reading("heart_rate", 70)), SERVICE)
    await first.close()
    clock.advance(3600)  # no node was up: the monitor could not report
    restarted = await Services.open(config, ConnectionRegistry(), clock=clock, background=False)
    try:
        assert await restarted.vitals.check_silence() == []
        clock.advance(restarted.vitals.silence_s)
        (alert,) = await restarted.vitals.check_silence()
        assert alert.type == "device.offline"
    finally:
        await restarted.close()
