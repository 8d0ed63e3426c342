"""Schemas of the `vitals` router (CONTRACT section 8): bedside readings in, latest values and
history out, and the live `VitalsUpdate` stream.

Every reading is checked against its kind before anything is stored: the unit, when given,
must be the kind's own (`KINDS`), and the value must be a finite number inside the kind's
physiological plausibility bounds. A value outside them is far more likely a broken sensor or a
unit mix-up (a temperature in Fahrenheit, a heart rate in Hz) than a patient, and a rule engine
fed with it would raise nonsense alerts or miss real ones. A refused reading is BAD_REQUEST
with its index in `fieldErrors` (`readings.2.value`, `readings.0.unit`), and the whole report is
refused: nothing of it is stored.

Hostile inputs and their documented errors (invalid params, BAD_REQUEST in tRPC's dialect):
- NaN or an infinity: `readings.<i>.value`: "Input should be a finite number" (and JSON itself
  has neither: the wire parser refuses `NaN` as a parse error first);
- a number sent as a string (`"72"`) or a boolean: `readings.<i>.value`: "Input should be a
  valid number";
- an unknown kind: `readings.<i>.kind`: "Input should be 'heart_rate', 'spo2', ...";
- more than MAX_READINGS readings, or none: `readings`: "List should have at most 100 items";
- a unit that is not the kind's: `readings.<i>.unit`: "heart_rate is measured in bpm";
- a time that is not ISO 8601 with a zone, or is more than MAX_FUTURE_S ahead:
  `readings.<i>.measuredAt`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal, NamedTuple

from pydantic import Field, ValidationInfo, field_validator

from schemas.alerts import Alert
from schemas.base import HospitalId, InputModel, PlainText, WireModel

VitalKind = Literal[
    "heart_rate", "spo2", "systolic_bp", "diastolic_bp", "temperature", "respiratory_rate"
]


class KindSpec(NamedTuple):
    unit: str
    low: float  # plausibility bounds, inclusive
    high: float
    label: str


KINDS: dict[str, KindSpec] = {
    "heart_rate": KindSpec("bpm", 0.0, 300.0, "Heart rate"),
    "spo2": KindSpec("%", 0.0, 100.0, "SpO2"),
    "systolic_bp": KindSpec("mmHg", 20.0, 300.0, "Systolic BP"),
    "diastolic_bp": KindSpec("mmHg", 10.0, 250.0, "Diastolic BP"),
    "temperature": KindSpec("°C", 25.0, 45.0, "Temperature"),
    "respiratory_rate": KindSpec("/min", 0.0, 100.0, "Respiratory rate"),
}

MAX_READINGS = 100
# A device clock may run a little ahead; further ahead is a wrong clock, not a measurement.
MAX_FUTURE_S = 300.0

PatientId = Annotated[PlainText, Field(min_length=1, max_length=128)]
DeviceId = Annotated[
    str,
    Field(
        min_length=1,
        max_length=128,
        pattern=r"^[A-Za-z0-9_.:-]+$",
        description="A device id: letters, digits and _ . : -",
    ),
]
Timestamp = Annotated[
    PlainText,
    Field(
        min_length=1, max_length=40, description="ISO 8601 with a zone, e.g. 2026-01-01T08:00:00Z"
    ),
]


def plausible(kind: str, value: float) -> str | None:
    """Why `value` cannot be a reading of `kind` (None when it can)."""
    spec = KINDS[kind]
    if not spec.low <= value <= spec.high:  # NaN and the infinities fail this too
        return (
            f"{kind} must be between {spec.low:g} and {spec.high:g} {spec.unit} "
            "(outside physiological plausibility)"
        )
    return None


def parse_timestamp(raw: str) -> float:
    """An ISO 8601 time with a zone -> unix seconds; ValueError otherwise."""
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        raise ValueError("must be an ISO 8601 time such as 2026-01-01T08:00:00Z") from None
    if parsed.tzinfo is None:
        raise ValueError("must carry a time zone (e.g. a trailing Z)")
    return parsed.timestamp()


class ReadingInput(InputModel):
    """One measurement. `unit` may be left out; when given it must be the kind's unit.
    `measuredAt` defaults to the time the server receives it."""

    kind: VitalKind
    value: Annotated[float, Field(allow_inf_nan=False)]
    unit: Annotated[str, Field(max_length=16)] | None = None
    measured_at: Timestamp | None = None

    @field_validator("value")
    @classmethod
    def _plausible(cls, value: float, info: ValidationInfo) -> float:
        kind = info.data.get("kind")
        if kind is not None:
            problem = plausible(kind, value)
            if problem is not None:
                raise ValueError(problem)
        return value

    @field_validator("unit")
    @classmethod
    def _unit(cls, unit: str | None, info: ValidationInfo) -> str | None:
        kind = info.data.get("kind")
        if unit is not None and kind is not None and unit != KINDS[kind].unit:
            raise ValueError(f"{kind} is measured in {KINDS[kind].unit}")
        return unit

    @field_validator("measured_at")
    @classmethod
    def _when(cls, stamp: str | None) -> str | None:
        latest = datetime.now(UTC).timestamp() + MAX_FUTURE_S
        if stamp is not None and parse_timestamp(stamp) > latest:
            raise ValueError(f"is more than {MAX_FUTURE_S:g} s in the future")
        return stamp


class ReportVitalsInput(InputModel):
    """A device's (or gateway's) readings of one patient: 1 to 100, stored in one transaction
    and evaluated against the hospital's threshold rules."""

    hospital_id: HospitalId
    patient_id: PatientId
    device_id: DeviceId
    readings: Annotated[list[ReadingInput], Field(min_length=1, max_length=MAX_READINGS)]


class Reading(WireModel):
    """A stored reading. `measuredAt` orders "latest" and history."""

    patient_id: str
    device_id: str
    kind: VitalKind
    value: float
    unit: str
    measured_at: str


class LatestVitalsInput(InputModel):
    hospital_id: HospitalId
    patient_id: PatientId


class LatestVitals(WireModel):
    """The newest reading of each kind of a patient (kinds never reported are absent)."""

    patient_id: str
    readings: list[Reading]


class VitalsHistoryInput(InputModel):
    """A patient's readings, newest first; `since` bounds how far back."""

    hospital_id: HospitalId
    patient_id: PatientId
    kind: VitalKind | None = None
    since: Timestamp | None = None
    limit: Annotated[int, Field(ge=1, le=1000)] = 100
    cursor: Annotated[PlainText, Field(min_length=1, max_length=64)] | None = None

    @field_validator("since")
    @classmethod
    def _since(cls, stamp: str | None) -> str | None:
        if stamp is not None:
            parse_timestamp(stamp)
        return stamp


class VitalsHistory(WireModel):
    items: list[Reading]
    next_cursor: str | None


class SubscribeVitalsInput(InputModel):
    """Live vitals of a hospital (or one patient, or some kinds): the latest value of each
    patient and kind at once, then changes, at most `maxRateHz` updates a second; a subscriber
    that falls behind gets the newest value of each kind, never a backlog."""

    hospital_id: HospitalId
    patient_id: PatientId | None = None
    kinds: Annotated[list[VitalKind], Field(min_length=1, max_length=len(KINDS))] | None = None
    max_rate_hz: Annotated[float, Field(gt=0, le=50, allow_inf_nan=False)] = 4.0


class VitalsUpdate(WireModel):
    """The kinds of one patient that changed (or, first, the snapshot of what is known)."""

    patient_id: str
    readings: list[Reading]


class ReportVitalsResult(WireModel):
    """`accepted`: readings stored; `alerts`: alerts the readings raised or updated."""

    accepted: int = Field(ge=0)
    alerts: list[Alert]
