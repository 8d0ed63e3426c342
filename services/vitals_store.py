"""The vitals store's seam: readings (with retention), the latest reading of each patient and
kind, the device registry, threshold rules and rule-alert episodes, whatever holds them.

Two implementations share the alert store's database and connections rather than opening
their own: `services/vitals_sqlite.py` runs its writes as steps of the SQLite store's write
batches (so a report shares a group commit with whatever else is waiting, and costs no
transaction of its own), `services/vitals_postgres.py` uses the PostgreSQL store's pool. One
contract suite runs on both (tests/services/test_vitals_store_contract.py).

Batching: a report of up to 100 readings is one transaction (its readings, the patient's latest
values and the device's last-seen time together).

Episodes: the rule engine raises at most one open alert per patient and alert type. Which
alert that is, is kept here per (hospital, patient, alert type) with a counter, the episode,
which rises with each new alert; it names the idempotency key the alert is created with, so
two nodes racing to raise the same episode's alert create one (services/rule_alerts.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from schemas.alerts import Priority
from schemas.devices import Device, DeviceStatus, RuleOp, ThresholdRule
from schemas.vitals import KINDS, Reading, VitalKind
from services.lifecycle import iso

if TYPE_CHECKING:
    from services.device_events import StoredDeviceEvent

# History cursor: (measured_ts, row number) of the last item of the page before.
Cursor = tuple[float, int]


@dataclass(frozen=True, slots=True)
class StoredReading:
    patient_id: str
    device_id: str
    kind: VitalKind
    value: float
    measured_ts: float
    n: int = 0  # the row number, set when read back (the history cursor uses it)

    @property
    def unit(self) -> str:
        return KINDS[self.kind].unit

    def wire(self) -> Reading:
        return Reading(
            patient_id=self.patient_id,
            device_id=self.device_id,
            kind=self.kind,
            value=self.value,
            unit=self.unit,
            measured_at=iso(self.measured_ts),
        )


@dataclass(frozen=True, slots=True)
class DeviceRecord:
    hospital_id: str
    device_id: str
    patient_id: str | None
    status: DeviceStatus
    battery: int | None
    detail: str | None
    last_seen_ts: float
    updated_ts: float

    def wire(self) -> Device:
        return Device(
            device_id=self.device_id,
            hospital_id=self.hospital_id,
            patient_id=self.patient_id,
            status=self.status,
            battery=self.battery,
            detail=self.detail,
            last_seen_at=iso(self.last_seen_ts),
            updated_at=iso(self.updated_ts),
        )


@dataclass(frozen=True, slots=True)
class DeviceChange:
    """A device after a write and as it was before (None: it was new)."""

    device: DeviceRecord
    previous: DeviceRecord | None

    @property
    def changed(self) -> bool:
        """Something a status subscriber sees changed (not only the last-seen time)."""
        before = self.previous
        return before is None or before.updated_ts != self.device.updated_ts


@dataclass(frozen=True, slots=True)
class ReportWrite:
    hospital_id: str
    patient_id: str
    device_id: str
    readings: Sequence[StoredReading]
    received_ts: float


@dataclass(frozen=True, slots=True)
class StatusWrite:
    hospital_id: str
    device_id: str
    status: DeviceStatus
    patient_id: str | None  # None keeps the device's patient
    battery: int | None  # None keeps the last battery level
    detail: str | None  # None keeps the last detail
    now: float


def touched(previous: DeviceRecord | None, write: ReportWrite) -> DeviceRecord:
    """The device after a vitals report: seen now, at the report's patient; a device marked
    offline (by itself or by silence) that reports again is online."""
    now = write.received_ts
    if previous is None:
        return DeviceRecord(
            write.hospital_id, write.device_id, write.patient_id, "online", None, None, now, now
        )
    status: DeviceStatus = "online" if previous.status == "offline" else previous.status
    changed = status != previous.status or write.patient_id != previous.patient_id
    return DeviceRecord(
        previous.hospital_id,
        previous.device_id,
        write.patient_id,
        status,
        previous.battery,
        previous.detail,
        now,
        now if changed else previous.updated_ts,
    )


def reported(previous: DeviceRecord | None, write: StatusWrite) -> DeviceRecord:
    """The device after a status report; fields left out keep their values."""
    keep = previous
    return DeviceRecord(
        write.hospital_id,
        write.device_id,
        write.patient_id if write.patient_id is not None else (keep.patient_id if keep else None),
        write.status,
        write.battery if write.battery is not None else (keep.battery if keep else None),
        write.detail if write.detail is not None else (keep.detail if keep else None),
        write.now,
        write.now,
    )


def silenced(device: DeviceRecord, now: float) -> DeviceRecord:
    """`device` as the silence watcher leaves it."""
    return DeviceRecord(
        device.hospital_id,
        device.device_id,
        device.patient_id,
        "offline",
        device.battery,
        device.detail,
        device.last_seen_ts,
        now,
    )


def default_rules(hospital_id: str) -> list[ThresholdRule]:
    """What every hospital starts with (CONTRACT 8); each may be changed or deleted."""

    def rule(
        rule_id: str, kind: VitalKind, op: RuleOp, value: float, priority: Priority, type_: str
    ) -> ThresholdRule:
        return ThresholdRule(
            rule_id=rule_id,
            hospital_id=hospital_id,
            kind=kind,
            op=op,
            value=value,
            clear_value=None,
            sustain_seconds=0,
            priority=priority,
            alert_type=type_,
        )

    return [
        rule("default.high_bp.systolic", "systolic_bp", ">", 140, "medium", "vitals.high_bp"),
        rule("default.high_bp.diastolic", "diastolic_bp", ">", 90, "medium", "vitals.high_bp"),
        rule("default.low_spo2", "spo2", "<", 90, "high", "vitals.low_spo2"),
        rule("default.high_heart_rate", "heart_rate", ">", 130, "high", "vitals.high_heart_rate"),
        rule("default.low_heart_rate", "heart_rate", "<", 40, "high", "vitals.low_heart_rate"),
        rule("default.fever", "temperature", ">", 38.5, "medium", "vitals.fever"),
    ]


class VitalsStore(Protocol):
    async def close(self) -> None:
        """Stop writing (before the alert store closes the connections); waiting writes are
        refused with SERVICE_UNAVAILABLE."""

    async def record(self, write: ReportWrite) -> DeviceChange:
        """Store a report's readings, the patient's latest values and the device's last-seen
        time in one transaction."""

    async def latest(
        self, hospital_id: str, patient_id: str | None, kinds: Sequence[str] | None
    ) -> list[StoredReading]:
        """The newest reading of each (patient, kind); every patient when `patient_id` is
        None."""

    async def history(
        self,
        hospital_id: str,
        patient_id: str,
        kind: str | None,
        since_ts: float | None,
        limit: int,
        cursor: Cursor | None,
    ) -> tuple[list[StoredReading], Cursor | None]:
        """Readings newest first (by measuredAt), after `cursor`; the next cursor or None."""

    async def report_status(self, write: StatusWrite) -> DeviceChange: ...

    async def devices(self, hospital_id: str) -> list[DeviceRecord]: ...

    async def silent_devices(self, seen_before: float) -> list[DeviceRecord]:
        """Devices assigned to a patient, neither offline nor in maintenance, not seen since
        `seen_before`."""

    async def mark_silent(self, device: DeviceRecord, now: float) -> DeviceRecord | None:
        """Mark `device` offline if it is still exactly as read (not seen, not changed since):
        the one caller that gets it back, of any node, raises the alert."""

    async def rules(self, hospital_id: str) -> list[ThresholdRule]:
        """The hospital's rules; the defaults are stored on first use."""

    async def upsert_rule(self, rule: ThresholdRule) -> ThresholdRule: ...

    async def delete_rule(self, hospital_id: str, rule_id: str) -> bool: ...

    async def episode(self, hospital_id: str, patient_id: str, alert_type: str) -> tuple[str, int]:
        """(alert id, episode) of the patient's newest rule alert of that type; ("", 0) when
        none was raised."""

    async def set_episode(
        self, hospital_id: str, patient_id: str, alert_type: str, alert_id: str, episode: int
    ) -> None:
        """Record that `episode`'s alert is `alert_id` (an older episode never overwrites a
        newer one)."""

    async def prune(self, before_ts: float) -> int:
        """Remove readings measured before `before_ts`; returns how many."""

    # The device event log (services/device_events.py): appended to by `record`,
    # `report_status` and `mark_silent` in their own transactions, read by webhook delivery.
    async def device_events_after(
        self, hospital_id: str, after_seq: int, limit: int
    ) -> list[StoredDeviceEvent]:
        """The hospital's device events after position `after_seq`, oldest first."""

    async def newest_device_event(self, hospital_id: str) -> int:
        """The hospital's newest device event position (0: none yet)."""

    async def prune_device_events(self, before_ts: float) -> int:
        """Remove device events older than `before_ts`, keeping each hospital's newest
        RETAINED_EVENTS; returns how many went."""


def make_vitals_store(store: object) -> VitalsStore:
    """The vitals store on the alert store's own database and connections."""
    from services.store_postgres import PostgresAlertStore
    from services.store_sqlite import SqliteAlertStore
    from services.vitals_postgres import PostgresVitalsStore
    from services.vitals_sqlite import SqliteVitalsStore

    if isinstance(store, PostgresAlertStore):
        return PostgresVitalsStore(store)
    if isinstance(store, SqliteAlertStore):
        return SqliteVitalsStore(store)
    raise TypeError(f"no vitals store for {type(store).__name__}")
