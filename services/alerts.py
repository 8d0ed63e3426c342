"""The alert lifecycle against the store: each change and its event commit together, then the
event is published (the store's `on_commit`), then the caller gets the alert.

Concurrency: every change runs inside the store's write transaction on the alert as committed
so far, so two clinicians racing on one alert are serialised: both succeed in turn (escalate,
update) or the second gets CONFLICT (acknowledge by someone else, anything after resolve).
`version` rises by one per change; no update is ever lost. With several writers on one
database (a cluster) a change staged on a stale read is run again by the store on a fresh one
(services/store.py), with the same outcome.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable

import orjson

from rpc.errors import ErrorCode, RpcError
from schemas.alerts import (
    Alert,
    AlertEvent,
    AlertEventType,
    CreateAlertInput,
    Priority,
    UpdateAlertInput,
)
from services import lifecycle
from services.lifecycle import Change, iso
from services.store import (
    IDEMPOTENCY_TTL_S,
    AlertRecord,
    AlertStore,
    StagedChange,
    Transaction,
    format_event_id,
)

Clock = Callable[[], float]
RecordListener = Callable[[AlertRecord], None]
# (event type, actor, the alert before, after): a change this node committed, once committed.
CommitListener = Callable[[AlertEventType, str, Alert | None, Alert], None]


def new_alert_id() -> str:
    return "al_" + secrets.token_urlsafe(12)


def not_found(alert_id: str) -> RpcError:
    return RpcError(ErrorCode.NOT_FOUND, "No such alert", {"alertId": alert_id})


def event_payload(
    seq: int, change: Change, actor: str, now: float, note: str | None = None
) -> bytes:
    """The AlertEvent as it goes on the wire; encoded once, shared by every subscriber. `note`
    is the text of an `alert.noted` event and null on the others (their reason or resolution
    stays in the audit trail)."""
    alert = change.alert
    body = {
        "id": format_event_id(seq),
        "type": change.event_type,
        "hospitalId": alert.hospital_id,
        "alertId": alert.id,
        "alert": alert.model_dump(mode="json", by_alias=True),
        "actorId": actor,
        "occurredAt": iso(now),
        "note": note if change.event_type == "alert.noted" else None,
    }
    return orjson.dumps(body)


class AlertService:
    def __init__(
        self,
        store: AlertStore,
        targets: dict[Priority, float],
        clock: Clock = time.time,
        new_id: Callable[[], str] = new_alert_id,
    ) -> None:
        self.store = store
        self.targets = targets
        self.clock = clock
        self.new_id = new_id
        self._watchers: list[RecordListener] = []
        self._committed_listeners: list[CommitListener] = []

    def watch(self, listener: RecordListener) -> None:
        """Hear every alert state as it is staged for commit (the escalation policy schedules
        from it)."""
        self._watchers.append(listener)

    def on_committed(self, listener: CommitListener) -> None:
        """Hear each change this node committed (acknowledge, escalate, update, resolve,
        automatic escalation), after the commit: the notification rules run from it, once in
        a cluster since exactly one node commits a change."""
        self._committed_listeners.append(listener)

    def _tell(self, changes: list[tuple[AlertEventType, str, Alert, Alert]]) -> None:
        for event_type, actor, before, after in changes:
            for listener in self._committed_listeners:
                listener(event_type, actor, before, after)

    async def get(self, alert_id: str) -> AlertRecord:
        record = await self.store.get(alert_id)
        if record is None:
            raise not_found(alert_id)
        return record

    # --- changes ----------------------------------------------------------------------------

    async def create(self, data: CreateAlertInput, actor: str) -> Alert:
        """Raise an alert. With an idempotency key that this hospital used within
        IDEMPOTENCY_TTL_S, nothing is created: the alert that first call created is returned
        as it stands now (looked up inside the transaction, so a duplicate in the same batch,
        or one another node commits first, finds it too)."""
        key = data.idempotency_key

        async def operation(tx: Transaction) -> AlertRecord:
            now = self.clock()
            if key is not None:
                earlier = await self._created_by_key(tx, data.hospital_id, key, now)
                if earlier is not None:
                    return earlier
            change = lifecycle.create(self.new_id(), data, actor, now)
            record = AlertRecord(change.alert, now, None, now + self.targets[data.priority])
            return self._stage(tx, record, change, actor, now, None, key)

        return self._committed(await self.store.transact(operation))

    @staticmethod
    async def _created_by_key(
        tx: Transaction, hospital_id: str, key: str, now: float
    ) -> AlertRecord | None:
        alert_id = await tx.created_by_key(hospital_id, key, now - IDEMPOTENCY_TTL_S)
        return None if alert_id is None else await tx.get(alert_id)

    async def acknowledge(self, alert_id: str, actor: str, note: str | None) -> Alert:
        def apply(record: AlertRecord, now: float) -> tuple[AlertRecord, Change] | None:
            change = lifecycle.acknowledge(record.alert, actor, now)
            if change is None:
                return None
            responded = record.responded_ts if record.responded_ts is not None else now
            return AlertRecord(change.alert, record.created_ts, responded, None), change

        return await self._change(alert_id, actor, note, apply)

    async def escalate(self, alert_id: str, actor: str, reason: str | None) -> Alert:
        def apply(record: AlertRecord, now: float) -> tuple[AlertRecord, Change]:
            change = lifecycle.escalate(record.alert, actor, now)
            due = now + self.targets[change.alert.priority]
            return AlertRecord(change.alert, record.created_ts, record.responded_ts, due), change

        return await self._change(alert_id, actor, reason, apply)

    async def update(self, data: UpdateAlertInput, actor: str) -> Alert:
        def apply(record: AlertRecord, now: float) -> tuple[AlertRecord, Change] | None:
            change = lifecycle.update(record.alert, data, now)
            if change is None:
                return None
            due = record.escalation_due
            if due is not None and change.alert.priority != record.alert.priority:
                # A raised priority shortens the wait; a lowered one never extends a due time.
                due = min(due, now + self.targets[change.alert.priority])
            return AlertRecord(change.alert, record.created_ts, record.responded_ts, due), change

        return await self._change(data.alert_id, actor, None, apply)

    async def update_if_quiet(
        self, data: UpdateAlertInput, actor: str, quiet_s: float
    ) -> Alert | None:
        """`update`, only if the alert is still open and has not changed for `quiet_s`
        (decided inside the transaction, on the alert as committed, so that several writers
        repeating the same news make one update per period); None when nothing changed."""

        async def operation(tx: Transaction) -> AlertRecord | None:
            record = await tx.get(data.alert_id)
            now = self.clock()
            if record is None or record.alert.status == "resolved":
                return None
            if now - lifecycle.parse_iso(record.alert.updated_at) < quiet_s:
                return None
            change = lifecycle.update(record.alert, data, now)
            if change is None:
                return None
            updated = AlertRecord(
                change.alert, record.created_ts, record.responded_ts, record.escalation_due
            )
            return self._stage(tx, updated, change, actor, now, None)

        record = await self.store.transact(operation)
        return None if record is None else self._committed(record)

    async def resolve(self, alert_id: str, actor: str, resolution: str | None) -> Alert:
        def apply(record: AlertRecord, now: float) -> tuple[AlertRecord, Change]:
            change = lifecycle.resolve(record.alert, actor, now)
            responded = record.responded_ts if record.responded_ts is not None else now
            return AlertRecord(change.alert, record.created_ts, responded, None), change

        return await self._change(alert_id, actor, resolution, apply)

    async def add_note(self, alert_id: str, actor: str, text: str) -> AlertEvent:
        """Commit an `alert.noted` event in the alert's stream (ordered and replayed like every
        other event) and return it as subscribers get it. The text is clinical: it goes to the
        store and the wire only, never to a log."""
        payloads: list[bytes] = []

        async def operation(tx: Transaction) -> AlertRecord:
            record = await tx.get(alert_id)
            if record is None:
                raise not_found(alert_id)
            now = self.clock()
            change = lifecycle.note(record.alert, now)
            updated = AlertRecord(
                change.alert, record.created_ts, record.responded_ts, record.escalation_due
            )
            payloads.clear()  # a batch run again on fresh reads stages it anew
            return self._stage(tx, updated, change, actor, now, text, note=text, keep=payloads)

        await self.store.transact(operation)
        # The last encoding is the committed one: a renumbered event is encoded again.
        return AlertEvent.model_validate_json(payloads[-1])

    async def escalate_if_due(self, alert_id: str) -> Alert | None:
        """Automatic escalation, as the system actor, once per period: only when the alert is
        still active and its due time has come (checked inside the transaction)."""

        changes: list[tuple[AlertEventType, str, Alert, Alert]] = []

        async def operation(tx: Transaction) -> AlertRecord | None:
            changes.clear()  # a batch run again on fresh reads stages it anew
            record = await tx.get(alert_id)
            now = self.clock()
            if record is None or record.alert.status != "active":
                return None
            if record.escalation_due is None or record.escalation_due > now:
                return None
            priority = record.alert.priority
            change = lifecycle.escalate(record.alert, lifecycle.SYSTEM_ACTOR, now)
            due = now + self.targets[priority]
            escalated = AlertRecord(change.alert, record.created_ts, record.responded_ts, due)
            reason = f"Not acknowledged within {self.targets[priority]:g} s ({priority})"
            changes.append((change.event_type, lifecycle.SYSTEM_ACTOR, record.alert, change.alert))
            return self._stage(tx, escalated, change, lifecycle.SYSTEM_ACTOR, now, reason)

        record = await self.store.transact(operation)
        self._tell(changes)
        return None if record is None else self._committed(record)

    # --- plumbing ----------------------------------------------------------------------------

    async def _change(
        self,
        alert_id: str,
        actor: str,
        detail: str | None,
        apply: Callable[[AlertRecord, float], tuple[AlertRecord, Change] | None],
    ) -> Alert:
        changes: list[tuple[AlertEventType, str, Alert, Alert]] = []

        async def operation(tx: Transaction) -> AlertRecord:
            changes.clear()  # a batch run again on fresh reads stages it anew
            record = await tx.get(alert_id)
            if record is None:
                raise not_found(alert_id)
            now = self.clock()
            result = apply(record, now)
            if result is None:
                return record  # an idempotent repeat: nothing to commit or publish
            updated, change = result
            changes.append((change.event_type, actor, record.alert, change.alert))
            return self._stage(tx, updated, change, actor, now, detail)

        committed = await self.store.transact(operation)
        self._tell(changes)
        return self._committed(committed)

    def _stage(
        self,
        tx: Transaction,
        record: AlertRecord,
        change: Change,
        actor: str,
        now: float,
        detail: str | None,
        idempotency_key: str | None = None,
        note: str | None = None,
        keep: list[bytes] | None = None,
    ) -> AlertRecord:
        """`keep`, when given, collects every encoding of the event (the last one is what
        commits, should the store renumber it)."""
        event_type: AlertEventType = change.event_type

        def make_event(seq: int) -> bytes:
            payload = event_payload(seq, change, actor, now, note)
            if keep is not None:
                keep.append(payload)
            return payload

        tx.stage(StagedChange(record, event_type, actor, now, detail, idempotency_key), make_event)
        # Told at staging, inside the writer, so that no caller going away after the commit
        # can keep it from being heard. Should the commit fail, a watcher has heard of a change
        # that did not happen: the escalation policy checks the committed state before acting.
        for watcher in self._watchers:
            watcher(record)
        return record

    @staticmethod
    def _committed(record: AlertRecord) -> Alert:
        return record.alert
