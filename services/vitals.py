"""Devices, vitals and threshold rules (CONTRACT 8): readings in, alerts out, live vitals.

A report (`report`): its readings, the patient's latest values and the device's last-seen time
are stored in one transaction (services/vitals_store.py) while each reading is judged against
the hospital's rules (services/rule_engine.py, pure) and the verdicts are carried out as alerts
(services/rule_alerts.py: one open alert per patient and type, decided from the store); the
two writes usually share a group commit. Once the readings are stored they are broadcast to
every node's live subscribers (services/vitals_live.py). Should the readings' write fail while
a rule's alert commits, the caller gets the error and the alert stands (a retry repeats into it
rather than raising another).

Rule state (a sustained breach's start, hysteresis) is kept per node, per patient and rule,
and a patient's reports are judged one at a time on a node (a lock per patient). A patient's
readings come from their bedside devices through one gateway connection, so one node sees
them in order; should they move to another node (a reconnect), that node starts with the rule
armed and no breach running: at worst a sustained breach is timed again from there, or a rule
with `clearValue` raises again although no reading crossed back. The one-open-alert guarantee
does not depend on it.

Device silence: `watch_silence` runs on every node; each looks for devices not seen for
DEVICE_SILENCE_SECONDS and marks them offline with a conditional write, so that exactly one
node (the one whose write matched) raises the `device.offline` alert, as `system`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from rpc.cluster import ClusterMessage, ClusterState
from rpc.errors import RpcError
from schemas.alerts import Alert
from schemas.devices import ReportDeviceStatusInput, ThresholdRule, UpsertRuleInput
from schemas.vitals import KINDS, ReportVitalsInput, parse_timestamp
from services import rule_engine
from services.alerts import AlertService
from services.lifecycle import SYSTEM_ACTOR, iso
from services.rule_alerts import RuleAlerts
from services.rule_engine import Breach, RuleState, Verdict
from services.vitals_live import (
    DeviceChanged,
    LiveHub,
    VitalsChanged,
    device_message,
    vitals_message,
)
from services.vitals_store import (
    DeviceChange,
    DeviceRecord,
    ReportWrite,
    StatusWrite,
    StoredReading,
    VitalsStore,
)

log = logging.getLogger("alertwire.vitals")

RULES_TTL_S = 5.0  # backstop for a rule change broadcast that did not arrive
RULE_STATES = 200_000  # (hospital, patient, rule) states kept; the oldest are forgotten
DEVICE_OFFLINE = "device.offline"

Clock = Callable[[], float]
StateKey = tuple[str, str, str]


class RulesChanged(ClusterMessage):
    kind = "rules.changed"
    hospital_id: str


def _fmt(value: float) -> str:
    return f"{value:g}"


def breach_text(rule: ThresholdRule, value: float, measured_ts: float, device_id: str) -> str:
    unit = KINDS[rule.kind].unit
    return (
        f"{KINDS[rule.kind].label} {_fmt(value)} {unit} at {iso(measured_ts)} "
        f"(rule {rule.rule_id}: {rule.kind} {rule.op} {_fmt(rule.value)} {unit}; "
        f"device {device_id})"
    )


class VitalsService:
    def __init__(
        self,
        store: VitalsStore,
        alerts: AlertService,
        cluster: ClusterState,
        silence_s: float = 120.0,
        clock: Clock = time.time,
    ) -> None:
        self.store = store
        self.alerts = alerts
        self.cluster = cluster
        self.silence_s = silence_s
        self.clock = clock
        self.rule_alerts = RuleAlerts(store, alerts)
        self.hub = LiveHub()
        self._rules: dict[str, tuple[float, list[ThresholdRule]]] = {}
        self._states: OrderedDict[StateKey, RuleState] = OrderedDict()
        self._locks: dict[tuple[str, str], list[Any]] = {}  # [lock, users]
        self._watcher: asyncio.Task[None] | None = None
        # Silence is counted from this node's start at the earliest: devices could not report
        # while no node was up, and a restart must not raise an alert for every monitor.
        self._started = clock()
        self._unsubscribe = [
            cluster.on_message(VitalsChanged, self.hub.vitals_changed),
            cluster.on_message(DeviceChanged, self.hub.device_changed),
            cluster.on_message(RulesChanged, self._rules_changed),
        ]

    # --- readings ------------------------------------------------------------------------

    async def report(self, data: ReportVitalsInput, actor: str) -> tuple[int, list[Alert]]:
        """Store, broadcast and judge a report; returns (readings accepted, alerts raised or
        updated)."""
        now = self.clock()
        h, p, device_id = data.hospital_id, data.patient_id, data.device_id
        readings = [
            StoredReading(
                p,
                device_id,
                r.kind,
                r.value,
                now if r.measured_at is None else parse_timestamp(r.measured_at),
            )
            for r in data.readings
        ]
        rules = await self.rules(h)  # before the write: a report refused here stores nothing
        async with self._patient_turn(h, p):
            found, open_alerts = await self._evaluate(h, p, readings, rules)
            # The readings' write and the rule alerts' writes are queued in the same loop
            # iteration, so that they share one group commit: a breach costs no commit of
            # its own before its alert.
            outcomes = await asyncio.gather(
                self.store.record(ReportWrite(h, p, device_id, readings, now)),
                *(self._act(h, p, device_id, b, open_alerts, actor) for b in found),
                return_exceptions=True,
            )
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
        change = outcomes[0]
        assert isinstance(change, DeviceChange)
        alerts = [a for a in outcomes[1:] if isinstance(a, Alert)]
        # Live subscribers hear of stored readings only.
        await self._publish(vitals_message(h, p, device_id, readings))
        if change.changed:
            await self._publish(device_message(change.device))
        return len(readings), alerts

    @contextlib.asynccontextmanager
    async def _patient_turn(self, h: str, p: str) -> AsyncIterator[None]:
        """A patient's reports are judged one at a time on this node (rule state moves in
        reading order); the lock is dropped when no report of the patient is waiting."""
        key = (h, p)
        entry = self._locks.get(key)
        if entry is None:
            entry = self._locks[key] = [asyncio.Lock(), 0]
        entry[1] += 1
        try:
            async with entry[0]:
                yield
        finally:
            entry[1] -= 1
            if entry[1] == 0:
                del self._locks[key]

    async def _evaluate(
        self, h: str, p: str, readings: Sequence[StoredReading], rules: Sequence[ThresholdRule]
    ) -> tuple[list[Breach], dict[str, Alert | None]]:
        """Each reading against each rule of its kind, in measuredAt order; the patient's open
        alerts are looked up (from the store) only for the types a reading breaches. Returns
        one action per alert type and the open alerts found."""
        by_kind: dict[str, list[ThresholdRule]] = {}
        for rule in rules:
            by_kind.setdefault(rule.kind, []).append(rule)
        now = self.clock()
        open_alerts: dict[str, Alert | None] = {}
        found: list[Breach] = []
        for reading in sorted(readings, key=lambda r: r.measured_ts):
            for rule in by_kind.get(reading.kind, ()):
                key = (h, p, rule.rule_id)
                state = self._states.get(key, rule_engine.ARMED)
                alert_open = False
                if rule_engine.breaches(rule, reading.value):
                    if rule.alert_type not in open_alerts:
                        open_alerts[rule.alert_type] = await self.rule_alerts.open_alert(
                            h, p, rule.alert_type
                        )
                    alert_open = open_alerts[rule.alert_type] is not None
                state, verdict = rule_engine.evaluate(rule, state, reading.value, now, alert_open)
                self._keep(key, state)
                if verdict is not Verdict.NOTHING:
                    found.append(
                        Breach(rule.alert_type, verdict, rule, reading.value, reading.measured_ts)
                    )
        return rule_engine.decide(found), open_alerts

    async def _act(
        self,
        h: str,
        p: str,
        device_id: str,
        breach: Breach,
        open_alerts: dict[str, Alert | None],
        actor: str,
    ) -> Alert | None:
        """Carry out one verdict: a (rate-limited) update of the open alert, or a new one."""
        text = breach_text(breach.rule, breach.value, breach.measured_ts, device_id)
        current = open_alerts.get(breach.alert_type)
        if breach.verdict is Verdict.REPEAT and current is not None:
            return await self.rule_alerts.repeat(current, text, actor)
        spec = KINDS[breach.rule.kind]
        title = f"{spec.label} {_fmt(breach.value)} {spec.unit}"
        return await self.rule_alerts.raise_alert(
            h, p, breach.alert_type, breach.rule.priority, title, text, actor
        )

    def _keep(self, key: StateKey, state: RuleState) -> None:
        if state == rule_engine.ARMED:
            self._states.pop(key, None)
            return
        self._states[key] = state
        self._states.move_to_end(key)
        while len(self._states) > RULE_STATES:
            self._states.popitem(last=False)

    async def _publish(self, message: ClusterMessage) -> None:
        """To every node's subscribers (this node's at once). Live vitals are best effort: a
        bus that is down costs other nodes' screens a value, never the report."""
        try:
            await self.cluster.publish(message)
        except Exception:
            log.warning("broadcasting %s failed", message.kind, exc_info=True)

    async def latest(self, hospital_id: str, patient_id: str) -> list[StoredReading]:
        return await self.store.latest(hospital_id, patient_id, None)

    # --- devices -------------------------------------------------------------------------

    async def report_status(
        self, data: ReportDeviceStatusInput, actor: str
    ) -> tuple[DeviceRecord, Alert | None]:
        """Record a device's status; a device going offline while assigned to a patient
        raises (or repeats) the patient's `device.offline` alert, created by `actor`."""
        write = StatusWrite(
            data.hospital_id,
            data.device_id,
            data.status,
            data.patient_id,
            data.battery,
            data.detail,
            self.clock(),
        )
        change = await self.store.report_status(write)
        await self._publish(device_message(change.device))
        alert = None
        if self._went_offline(change):
            alert = await self._device_offline(change.device, actor, "reported offline")
        return change.device, alert

    @staticmethod
    def _went_offline(change: DeviceChange) -> bool:
        device, before = change.device, change.previous
        return (
            device.status == "offline"
            and device.patient_id is not None
            and (before is None or before.status != "offline")
        )

    async def _device_offline(self, device: DeviceRecord, actor: str, why: str) -> Alert | None:
        assert device.patient_id is not None
        title = f"Device {device.device_id} offline"
        message = f"Device {device.device_id} {why} at {iso(device.updated_ts)}"
        if device.detail:
            message += f": {device.detail}"
        return await self.rule_alerts.raise_or_repeat(
            device.hospital_id,
            device.patient_id,
            DEVICE_OFFLINE,
            "high",
            title,
            message,
            actor,
        )

    async def check_silence(self) -> list[Alert]:
        """Mark devices silent for `silence_s` offline (each once, across nodes) and raise
        their alerts; returns the alerts this node raised or updated."""
        now = self.clock()
        out: list[Alert] = []
        if now - self._started < self.silence_s:
            return out
        for device in await self.store.silent_devices(now - self.silence_s):
            marked = await self.store.mark_silent(device, now)
            if marked is None:
                continue  # seen again meanwhile, or another node marked it
            await self._publish(device_message(marked))
            why = f"silent for {self.silence_s:g} s (last seen {iso(device.last_seen_ts)})"
            alert = await self._device_offline(marked, SYSTEM_ACTOR, why)
            if alert is not None:
                out.append(alert)
        return out

    def start(self) -> None:
        self._watcher = asyncio.create_task(self._watch_silence(), name="device-silence")

    async def _watch_silence(self) -> None:
        """Noticed within 1 s of the silence period (CONTRACT 8)."""
        period = min(0.5, self.silence_s / 2)
        while True:
            try:
                await self.check_silence()
            except RpcError as exc:
                log.warning("device silence check failed (%s); will retry", exc.code.name)
            except Exception:
                log.exception("device silence check failed; will retry")
            await asyncio.sleep(period)

    async def stop(self) -> None:
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
            self._watcher = None
        await self.store.close()

    # --- rules ---------------------------------------------------------------------------

    async def rules(self, hospital_id: str) -> list[ThresholdRule]:
        """The hospital's rules, cached; every node drops its copy when any node changes
        them (RulesChanged), and after RULES_TTL_S whatever happened."""
        cached = self._rules.get(hospital_id)
        now = time.monotonic()
        if cached is not None and now - cached[0] < RULES_TTL_S:
            return cached[1]
        rules = await self.store.rules(hospital_id)
        self._rules[hospital_id] = (now, rules)
        return rules

    def _rules_changed(self, message: RulesChanged) -> None:
        self._rules.pop(message.hospital_id, None)

    async def upsert_rule(self, data: UpsertRuleInput) -> ThresholdRule:
        fields = data.model_dump(by_alias=False)
        fields["rule_id"] = data.rule_id or "rule_" + secrets.token_urlsafe(9)
        rule = await self.store.upsert_rule(ThresholdRule(**fields))
        await self._publish(RulesChanged(hospital_id=data.hospital_id))
        return rule

    async def delete_rule(self, hospital_id: str, rule_id: str) -> bool:
        deleted = await self.store.delete_rule(hospital_id, rule_id)
        await self._publish(RulesChanged(hospital_id=hospital_id))
        return deleted
