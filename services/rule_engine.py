"""Threshold rules as pure functions: (rule, its state for a patient, a reading, now,
whether the patient's alert of the rule's type is open) -> (new state, what to do).

No I/O and no clock of its own (`now` is passed in: server time, CONTRACT 8), so every case is
tested directly (tests/services/test_rule_engine.py). services/vitals.py keeps the states and
carries out the verdicts through services/rule_alerts.py.

Semantics (CONTRACT 8):
- a breach is a reading for which `value op rule.value` holds;
- `sustainSeconds`: a breach counts once breaching readings have continued that long, with no
  non-breaching reading in between (the first breaching reading starts the clock);
- while the patient's alert of the rule's `alertType` is open, a counted breach is a REPEAT
  (the caller turns it into at most one `alert.updated` per UPDATE_INTERVAL_S);
- otherwise a counted breach RAISEs a new alert, unless the rule is disarmed;
- `clearValue` (hysteresis): raising disarms the rule; only a reading at or past `clearValue`
  (at or below it for `>`/`>=`, at or above for `<`/`<=`) arms it again. Resolving the alert
  does not. Without `clearValue` the rule is always armed: after the alert is resolved, the
  next counted breach raises a new one.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import Enum

from schemas.alerts import Priority
from schemas.devices import ThresholdRule

UPDATE_INTERVAL_S = 30.0
PRIORITY_RANK: dict[Priority, int] = {"low": 0, "medium": 1, "high": 2, "critical": 3}

OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


class Verdict(Enum):
    NOTHING = "nothing"
    RAISE = "raise"
    REPEAT = "repeat"


@dataclass(frozen=True, slots=True)
class RuleState:
    """One rule for one patient. `breach_since`: server time of the first breaching reading of
    the current run (None when the last reading did not breach). `disarmed`: an alert was
    raised and no reading has been past `clearValue` since."""

    breach_since: float | None = None
    disarmed: bool = False


ARMED = RuleState()


def breaches(rule: ThresholdRule, value: float) -> bool:
    return OPS[rule.op](value, rule.value)


def clears(rule: ThresholdRule, value: float) -> bool:
    """The reading is back at or past `clearValue` (re-arming a disarmed rule)."""
    if rule.clear_value is None:
        return True
    if rule.op in (">", ">="):
        return value <= rule.clear_value
    return value >= rule.clear_value


def evaluate(
    rule: ThresholdRule, state: RuleState, value: float, now: float, alert_open: bool
) -> tuple[RuleState, Verdict]:
    """One reading of the rule's kind."""
    if not breaches(rule, value):
        disarmed = state.disarmed and not clears(rule, value)
        return RuleState(None, disarmed), Verdict.NOTHING
    since = state.breach_since if state.breach_since is not None else now
    if now - since < rule.sustain_seconds:
        return RuleState(since, state.disarmed), Verdict.NOTHING
    if alert_open:
        return RuleState(since, state.disarmed), Verdict.REPEAT
    if state.disarmed:
        return RuleState(since, True), Verdict.NOTHING
    return RuleState(since, rule.clear_value is not None), Verdict.RAISE


@dataclass(frozen=True, slots=True)
class Breach:
    """What a report asks of one alert type: raise or repeat, with the rule and the reading
    that decided it (the most urgent rule; the newest reading of it)."""

    alert_type: str
    verdict: Verdict
    rule: ThresholdRule
    value: float
    measured_ts: float


def decide(breaches: Iterable[Breach]) -> list[Breach]:
    """One action per alert type (CONTRACT 8: at most one open alert per patient and
    `alertType`, so the systolic and diastolic rules of `vitals.high_bp` raise one between
    them): RAISE wins over REPEAT, then the higher priority, then the newer reading."""
    chosen: dict[str, Breach] = {}
    for breach in breaches:
        best = chosen.get(breach.alert_type)
        if best is None or _rank(breach) >= _rank(best):
            chosen[breach.alert_type] = breach
    return list(chosen.values())


def _rank(breach: Breach) -> tuple[int, int, float]:
    raising = 1 if breach.verdict is Verdict.RAISE else 0
    return raising, PRIORITY_RANK[breach.rule.priority], breach.measured_ts


def repeat_due(last_change: float, now: float) -> bool:
    """Whether a repeat may update the open alert (at most once per UPDATE_INTERVAL_S, counted
    from the alert's last change of any kind)."""
    return now - last_change >= UPDATE_INTERVAL_S
