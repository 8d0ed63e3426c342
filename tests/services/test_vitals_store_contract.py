"""The VitalsStore seam's contract, run on both stores (the `backend` fixture): a report's
readings, latest values and device together; history order and paging; the device registry and
the once-only silence mark; rules seeded once per hospital; episodes; retention."""

from __future__ import annotations

import asyncio
import itertools

from schemas.devices import ThresholdRule
from services.vitals_store import (
    ReportWrite,
    StatusWrite,
    StoredReading,
    VitalsStore,
    make_vitals_store,
)
from tests.services.stores import AnyStore, Backend, open_store

T0 = 1_800_000_000.0


def report(
    patient: str = "p1", device: str = "d1", now: float = T0, **values: float
) -> ReportWrite:
    readings = [
        StoredReading(patient, device, kind, value, now)  # type: ignore[arg-type]
        for kind, value in values.items()
    ]
    return ReportWrite("h1", patient, device, readings, now)


def vitals(store: AnyStore) -> VitalsStore:
    return make_vitals_store(store)


async def test_a_report_stores_readings_latest_and_device_together(backend: Backend) -> None:
    async with open_store(backend) as store:
        v = vitals(store)
        change = await v.record(report(heart_rate=72, spo2=97))
        assert change.previous is None
        assert change.changed
        assert change.device.status == "online"
        assert change.device.patient_id == "p1"
        await v.record(report(now=T0 + 5, heart_rate=80))
        latest = {r.kind: r.value for r in await v.latest("h1", "p1", None)}
        assert latest == {"heart_rate": 80, "spo2": 97}
        assert [r.kind for r in await v.latest("h1", None, ["spo2"])] == ["spo2"]
        assert await v.latest("h2", None, None) == []
    assert backend.query("SELECT COUNT(*) FROM vitals_readings")[0][0] == 3


async def test_an_older_reading_does_not_replace_the_latest(backend: Backend) -> None:
    async with open_store(backend) as store:
        v = vitals(store)
        await v.record(report(now=T0 + 10, heart_rate=90))
        await v.record(report(now=T0, heart_rate=60))
        assert [r.value for r in await v.latest("h1", "p1", None)] == [90]


async def test_history_is_newest_first_and_pages(backend: Backend) -> None:
    async with open_store(backend) as store:
        v = vitals(store)
        for i in range(5):
            await v.record(report(now=T0 + i, heart_rate=60 + i, spo2=90 + i))
        items, cursor = await v.history("h1", "p1", "heart_rate", None, 3, None)
        assert [r.value for r in items] == [64, 63, 62]
        assert cursor is not None
        rest, end = await v.history("h1", "p1", "heart_rate", None, 3, cursor)
        assert [r.value for r in rest] == [61, 60]
        assert end is None
        recent, _ = await v.history("h1", "p1", None, T0 + 3, 100, None)
        assert len(recent) == 4
        assert (await v.history("h1", "other", None, None, 10, None)) == ([], None)


async def test_a_device_keeps_its_patient_until_a_report_changes_it(backend: Backend) -> None:
    async with open_store(backend) as store:
        v = vitals(store)
        first = await v.report_status(
            StatusWrite("h1", "d1", "low_battery", "p1", 15, "battery low", T0)
        )
        assert first.previous is None
        second = await v.report_status(StatusWrite("h1", "d1", "online", None, None, None, T0 + 1))
        assert second.device.patient_id == "p1"
        assert second.device.battery == 15
        assert second.previous is not None
        assert second.previous.status == "low_battery"
        listed = await v.devices("h1")
        assert [(d.device_id, d.status, d.patient_id) for d in listed] == [("d1", "online", "p1")]
        assert await v.devices("h2") == []


async def test_a_silent_device_is_marked_offline_once(backend: Backend) -> None:
    async with open_store(backend) as store:
        v = vitals(store)
        await v.record(report(heart_rate=70))
        await v.record(report(patient="p2", device="d2", now=T0 + 100, heart_rate=70))
        silent = await v.silent_devices(T0 + 50)
        assert [d.device_id for d in silent] == ["d1"]
        # Two nodes noticing the same silence: exactly one wins.
        marks = await asyncio.gather(
            v.mark_silent(silent[0], T0 + 60), v.mark_silent(silent[0], T0 + 60)
        )
        assert sum(m is not None for m in marks) == 1
        assert await v.silent_devices(T0 + 200) == [
            d for d in await v.devices("h1") if d.device_id == "d2"
        ]
        # Reporting again brings it back online.
        change = await v.record(report(now=T0 + 300, heart_rate=70))
        assert change.device.status == "online"
        assert change.changed


async def test_a_device_seen_since_it_was_read_is_not_marked(backend: Backend) -> None:
    async with open_store(backend) as store:
        v = vitals(store)
        await v.record(report(heart_rate=70))
        (stale,) = await v.silent_devices(T0 + 50)
        await v.record(report(now=T0 + 51, heart_rate=71))
        assert await v.mark_silent(stale, T0 + 52) is None


async def test_rules_start_with_the_defaults_once(backend: Backend) -> None:
    async with open_store(backend) as store:
        v = vitals(store)
        rules = await v.rules("h1")
        kinds = {(r.kind, r.op, r.value, r.alert_type) for r in rules}
        assert ("systolic_bp", ">", 140, "vitals.high_bp") in kinds
        assert ("diastolic_bp", ">", 90, "vitals.high_bp") in kinds
        assert ("spo2", "<", 90, "vitals.low_spo2") in kinds
        assert {("heart_rate", ">", 130), ("heart_rate", "<", 40)} <= {
            (k, o, x) for k, o, x, _ in kinds
        }
        assert ("temperature", ">", 38.5, "vitals.fever") in kinds
        assert await v.delete_rule("h1", "default.fever")
        assert not await v.delete_rule("h1", "default.fever")
        custom = rules[0].model_copy(update={"rule_id": "mine", "value": 150.0})
        assert await v.upsert_rule(custom) == custom
        again = {r.rule_id for r in await v.rules("h1")}
        assert "default.fever" not in again
        assert "mine" in again
        # A hospital seeded concurrently from two callers still has each default once.
        both = await asyncio.gather(v.rules("h2"), v.rules("h2"))
        assert len(both[0]) == len(both[1]) == len(rules)


async def test_a_new_hospitals_first_upsert_keeps_the_defaults(backend: Backend) -> None:
    async with open_store(backend) as store:
        v = vitals(store)
        rule = ThresholdRule(
            rule_id="r1",
            hospital_id="h3",
            kind="spo2",
            op="<",
            value=92,
            clear_value=94,
            sustain_seconds=10,
            priority="critical",
            alert_type="vitals.low_spo2",
        )
        await v.upsert_rule(rule)
        rules = await v.rules("h3")
        assert rule in rules
        assert len(rules) == 7


async def test_episodes_only_move_forward(backend: Backend) -> None:
    async with open_store(backend) as store:
        v = vitals(store)
        assert await v.episode("h1", "p1", "vitals.high_bp") == ("", 0)
        await v.set_episode("h1", "p1", "vitals.high_bp", "al_2", 2)
        await v.set_episode("h1", "p1", "vitals.high_bp", "al_1", 1)
        assert await v.episode("h1", "p1", "vitals.high_bp") == ("al_2", 2)
        assert await v.episode("h1", "p2", "vitals.high_bp") == ("", 0)


async def test_retention_removes_old_readings(backend: Backend) -> None:
    async with open_store(backend) as store:
        v = vitals(store)
        await v.record(report(now=T0, heart_rate=70))
        await v.record(report(patient="p2", now=T0 + 100, heart_rate=75, spo2=96))
        assert await v.prune(T0 + 50) == 1
        assert await v.latest("h1", "p1", None) == []
        assert len(await v.latest("h1", "p2", None)) == 2


async def test_concurrent_reports_of_one_device_each_see_the_one_before(backend: Backend) -> None:
    """Reports arriving together (one group commit on either store) are applied in order."""
    async with open_store(backend) as store:
        v = vitals(store)
        changes = await asyncio.gather(
            *(
                v.record(report(patient=f"p{i % 2}", now=T0 + i, heart_rate=70 + i))
                for i in range(6)
            )
        )
        assert changes[0].previous is None
        for before, after in itertools.pairwise(changes):
            assert after.previous == before.device
        (device,) = await v.devices("h1")
        assert device.patient_id == "p1"
        assert device.last_seen_ts == T0 + 5
    assert backend.query("SELECT COUNT(*) FROM vitals_readings")[0][0] == 6
