"""The rule engine's pure functions (services/rule_engine.py), without I/O: every operator,
sustained breaches on an injected time, hysteresis, open-alert repeats, one action per alert
type, the repeat interval."""

from __future__ import annotations

import pytest

from schemas.devices import RuleOp, ThresholdRule
from services.rule_engine import (
    ARMED,
    UPDATE_INTERVAL_S,
    Breach,
    RuleState,
    Verdict,
    breaches,
    decide,
    evaluate,
    repeat_due,
)

T0 = 1_700_000_000.0


def rule(
    op: RuleOp = ">",
    value: float = 140,
    clear: float | None = None,
    sustain: int = 0,
    kind: str = "systolic_bp",
    alert_type: str = "vitals.high_bp",
    priority: str = "medium",
    rule_id: str = "r",
) -> ThresholdRule:
    return ThresholdRule.model_validate(
        {
            "ruleId": rule_id,
            "hospitalId": "h1",
            "kind": kind,
            "op": op,
            "value": value,
            "clearValue": clear,
            "sustainSeconds": sustain,
            "priority": priority,
            "alertType": alert_type,
        }
    )


@pytest.mark.parametrize(
    ("op", "below", "at", "above"),
    [
        ("<", True, False, False),
        ("<=", True, True, False),
        (">", False, False, True),
        (">=", False, True, True),
    ],
)
def test_every_operator(op: RuleOp, below: bool, at: bool, above: bool) -> None:
    r = rule(op=op, value=100)
    assert (breaches(r, 99), breaches(r, 100), breaches(r, 101)) == (below, at, above)


def run(
    r: ThresholdRule, readings: list[tuple[float, float]], open_after_raise: bool = True
) -> list[Verdict]:
    """Feed (time, value) readings; the alert counts as open after a RAISE when asked."""
    state, out, alert_open = ARMED, [], False
    for at, value in readings:
        state, verdict = evaluate(r, state, value, at, alert_open)
        out.append(verdict)
        if verdict is Verdict.RAISE and open_after_raise:
            alert_open = True
    return out


def test_a_breach_raises_then_repeats_while_open() -> None:
    verdicts = run(rule(), [(T0, 150), (T0 + 1, 155), (T0 + 2, 120), (T0 + 3, 160)])
    assert verdicts == [Verdict.RAISE, Verdict.REPEAT, Verdict.NOTHING, Verdict.REPEAT]


def test_without_clear_value_a_breach_after_resolve_raises_again() -> None:
    r = rule()
    state, verdict = evaluate(r, ARMED, 150, T0, alert_open=False)
    assert verdict is Verdict.RAISE
    # The alert was resolved (not open): the next breach raises a new one at once.
    state, verdict = evaluate(r, state, 151, T0 + 1, alert_open=False)
    assert verdict is Verdict.RAISE


def test_hysteresis_rearms_only_past_the_clear_value() -> None:
    r = rule(op=">", value=140, clear=130)
    state, verdict = evaluate(r, ARMED, 150, T0, alert_open=False)
    assert verdict is Verdict.RAISE
    assert state.disarmed
    # Resolved, still high: no new alert (resolving does not re-arm).
    state, verdict = evaluate(r, state, 150, T0 + 1, alert_open=False)
    assert verdict is Verdict.NOTHING
    # Back under 140 but not under 130: still disarmed.
    state, verdict = evaluate(r, state, 135, T0 + 2, alert_open=False)
    assert state.disarmed
    state, verdict = evaluate(r, state, 145, T0 + 3, alert_open=False)
    assert verdict is Verdict.NOTHING
    # At the clear value: armed again; the next breach raises.
    state, _ = evaluate(r, state, 130, T0 + 4, alert_open=False)
    assert not state.disarmed
    _, verdict = evaluate(r, state, 145, T0 + 5, alert_open=False)
    assert verdict is Verdict.RAISE


def test_hysteresis_for_a_low_rule() -> None:
    r = rule(op="<", value=90, clear=94, kind="spo2", alert_type="vitals.low_spo2")
    state, verdict = evaluate(r, ARMED, 85, T0, alert_open=False)
    assert verdict is Verdict.RAISE
    state, _ = evaluate(r, state, 93, T0 + 1, alert_open=False)
    assert state.disarmed
    state, _ = evaluate(r, state, 94, T0 + 2, alert_open=False)
    assert state == ARMED


def test_a_disarmed_rule_still_repeats_on_its_open_alert() -> None:
    r = rule(clear=130)
    state, _ = evaluate(r, ARMED, 150, T0, alert_open=False)
    _, verdict = evaluate(r, state, 152, T0 + 1, alert_open=True)
    assert verdict is Verdict.REPEAT


def test_a_sustained_breach_counts_only_after_sustain_seconds() -> None:
    r = rule(sustain=60)
    verdicts = run(r, [(T0, 150), (T0 + 30, 150), (T0 + 59.9, 150), (T0 + 60, 150)])
    assert verdicts == [Verdict.NOTHING, Verdict.NOTHING, Verdict.NOTHING, Verdict.RAISE]


def test_a_normal_reading_restarts_the_sustain_clock() -> None:
    r = rule(sustain=60)
    verdicts = run(r, [(T0, 150), (T0 + 50, 120), (T0 + 70, 150), (T0 + 110, 150), (T0 + 130, 150)])
    assert verdicts == [Verdict.NOTHING] * 4 + [Verdict.RAISE]


def test_state_with_nothing_going_on_is_armed() -> None:
    state, verdict = evaluate(rule(), ARMED, 120, T0, alert_open=False)
    assert (state, verdict) == (RuleState(), Verdict.NOTHING)


def b(alert_type: str, verdict: Verdict, priority: str, ts: float, value: float = 1) -> Breach:
    return Breach(alert_type, verdict, rule(priority=priority), value, ts)


def test_one_action_per_alert_type() -> None:
    systolic = b("vitals.high_bp", Verdict.RAISE, "medium", T0, 150)
    diastolic = b("vitals.high_bp", Verdict.RAISE, "medium", T0 + 1, 95)
    spo2 = b("vitals.low_spo2", Verdict.REPEAT, "high", T0)
    chosen = decide([systolic, diastolic, spo2])
    assert sorted(x.alert_type for x in chosen) == ["vitals.high_bp", "vitals.low_spo2"]
    assert next(x for x in chosen if x.alert_type == "vitals.high_bp") == diastolic


def test_raise_wins_over_repeat_and_priority_over_time() -> None:
    repeat = b("t", Verdict.REPEAT, "critical", T0 + 5)
    low = b("t", Verdict.RAISE, "low", T0 + 9)
    high = b("t", Verdict.RAISE, "high", T0)
    assert decide([repeat, low, high]) == [high]


def test_repeats_are_due_once_per_interval() -> None:
    assert not repeat_due(T0, T0 + UPDATE_INTERVAL_S - 0.001)
    assert repeat_due(T0, T0 + UPDATE_INTERVAL_S)
