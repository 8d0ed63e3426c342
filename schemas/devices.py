"""Schemas of the `devices` and `rules` routers (CONTRACT section 8): the device registry with
its status stream, and the threshold rules that turn readings into alerts.

A rule's `value` and `clearValue` must lie inside the kind's plausibility bounds
(schemas.vitals.KINDS), and `clearValue` on the safe side of `value` (below it for `>` and
`>=`, above it for `<` and `<=`): a rule that re-arms only past a value on the breaching side
could never be cleared.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, ValidationInfo, field_validator

from schemas.alerts import AlertType, Priority
from schemas.base import HospitalId, InputModel, PlainText, WireModel
from schemas.vitals import DeviceId, PatientId, VitalKind, plausible

DeviceStatus = Literal["online", "offline", "low_battery", "error", "maintenance"]
RuleOp = Literal["<", "<=", ">", ">="]
RuleId = Annotated[
    str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$", description="A rule id")
]
MAX_SUSTAIN_S = 3600


class Device(WireModel):
    """A device as last reported. `patientId` stays until a report changes it."""

    device_id: str
    hospital_id: str
    patient_id: str | None
    status: DeviceStatus
    battery: int | None = Field(ge=0, le=100)
    detail: str | None
    last_seen_at: str
    updated_at: str


class ReportDeviceStatusInput(InputModel):
    """A device's status (from the device or its gateway). Left-out fields keep their value."""

    hospital_id: HospitalId
    device_id: DeviceId
    status: DeviceStatus
    patient_id: PatientId | None = None
    battery: Annotated[int, Field(ge=0, le=100)] | None = None
    detail: Annotated[PlainText, Field(min_length=1, max_length=200)] | None = None


class ListDevicesInput(InputModel):
    hospital_id: HospitalId


class SubscribeDeviceStatusInput(InputModel):
    """The hospital's devices at once, then each device as it changes (newest state only)."""

    hospital_id: HospitalId


class ThresholdRule(WireModel):
    """A breach is a reading of `kind` for which `reading op value` holds."""

    rule_id: str
    hospital_id: str
    kind: VitalKind
    op: RuleOp
    value: float
    clear_value: float | None = Field(
        description="Hysteresis: after an alert the rule re-arms only once a reading is back "
        "past this value (resolving the alert does not re-arm it)."
    )
    sustain_seconds: int = Field(
        ge=0, description="A breach counts once breaching readings have lasted this long."
    )
    priority: Priority
    alert_type: str


class UpsertRuleInput(InputModel):
    """Create or replace a rule; `ruleId` is generated when left out."""

    rule_id: RuleId | None = None
    hospital_id: HospitalId
    kind: VitalKind
    op: RuleOp
    value: Annotated[float, Field(allow_inf_nan=False)]
    clear_value: Annotated[float, Field(allow_inf_nan=False)] | None = None
    sustain_seconds: Annotated[int, Field(ge=0, le=MAX_SUSTAIN_S)] = 0
    priority: Priority
    alert_type: AlertType

    @field_validator("value")
    @classmethod
    def _plausible_value(cls, value: float, info: ValidationInfo) -> float:
        kind = info.data.get("kind")
        problem = None if kind is None else plausible(kind, value)
        if problem is not None:
            raise ValueError(problem)
        return value

    @field_validator("clear_value")
    @classmethod
    def _safe_side(cls, clear: float | None, info: ValidationInfo) -> float | None:
        kind, op, value = (info.data.get(name) for name in ("kind", "op", "value"))
        if clear is None or kind is None or op is None or value is None:
            return clear
        problem = plausible(kind, clear)
        if problem is not None:
            raise ValueError(problem)
        above = op in (">", ">=")
        if (above and clear > value) or (not above and clear < value):
            side = "at or below" if above else "at or above"
            raise ValueError(f"must be {side} value for op {op!r}")
        return clear


class ListRulesInput(InputModel):
    hospital_id: HospitalId


class DeleteRuleInput(InputModel):
    hospital_id: HospitalId
    rule_id: RuleId


class DeleteRuleResult(WireModel):
    deleted: bool
