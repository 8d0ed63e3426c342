"""A PostgreSQL write batch in the event loop: what its operations staged, their provisional
positions, and the column arrays `alertwire_commit` takes (postgres_schema.py).

Pure functions and plain data, split from store_postgres.py; nothing here waits.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from services.store import AlertRecord, StagedChange, StoredEvent, VersionConflict


@dataclass(slots=True)
class Staged:
    change: StagedChange
    make_event: Callable[[int], bytes]
    event: StoredEvent  # at its provisional position; `number` gives the final one


@dataclass
class Batch:
    """Positions handed out so far, per hospital, and the records of the operations that
    succeeded (later operations of the batch read them)."""

    last_seq: dict[str, int]
    taken: dict[str, int] = field(default_factory=dict)
    records: dict[str, AlertRecord] = field(default_factory=dict)
    keys: dict[tuple[str, str], str] = field(default_factory=dict)  # claimed -> alert id
    read: set[str] = field(default_factory=set)  # every alert id an operation asked for

    def take(self, hospital_id: str) -> int:
        seq = self.taken.get(hospital_id, self.last_seq.get(hospital_id, 0)) + 1
        self.taken[hospital_id] = seq
        return seq

    def keep(self, changes: list[Staged]) -> None:
        for staged in changes:
            alert = staged.change.record.alert
            self.records[alert.id] = staged.change.record
            if staged.change.idempotency_key is not None:
                self.keys[(alert.hospital_id, staged.change.idempotency_key)] = alert.id

    def drop(self, changes: list[Staged]) -> None:
        """A failed operation's changes go, and their positions are handed out again:
        operations run one after another, so its positions are the last ones taken."""
        for staged in changes:
            self.taken[staged.event.hospital_id] -= 1
        changes.clear()


def number(
    staged: list[Staged], last_seq: dict[str, int]
) -> tuple[list[StoredEvent], list[list[Any]], list[list[Any]]]:
    """The batch's events at their final positions, right after `last_seq` of each hospital,
    in staging order; an event whose position moved is encoded again. Returns the events, the
    counter columns (hospital, from, to) and the event columns."""
    spans: dict[str, list[int]] = {}
    events: list[StoredEvent] = []
    for item in staged:
        event = item.event
        span = spans.get(event.hospital_id)
        if span is None:
            start = last_seq.get(event.hospital_id, 0)
            span = spans[event.hospital_id] = [start, start]
        span[1] += 1
        if event.seq != span[1]:
            event = StoredEvent(
                span[1], event.hospital_id, event.alert_id, item.make_event(span[1])
            )
        events.append(event)
    hospitals = sorted(spans)
    counters: list[list[Any]] = [
        hospitals,
        [spans[h][0] for h in hospitals],
        [spans[h][1] for h in hospitals],
    ]
    event_columns: list[list[Any]] = [[] for _ in range(8)]
    for item, event in zip(staged, events, strict=True):
        change = item.change
        row = (
            event.hospital_id,
            event.seq,
            event.alert_id,
            change.event_type,
            change.actor_id,
            change.occurred_ts,
            change.detail,
            event.payload,
        )
        for column, value in zip(event_columns, row, strict=True):
            column.append(value)
    return events, counters, event_columns


def key_columns(staged: list[Staged]) -> list[list[Any]]:
    """The idempotency keys the batch claims: hospital, key, alert id, time."""
    result: list[list[Any]] = [[], [], [], []]
    for item in staged:
        change = item.change
        if change.idempotency_key is None:
            continue
        alert = change.record.alert
        row = (alert.hospital_id, change.idempotency_key, alert.id, change.occurred_ts)
        for column, value in zip(result, row, strict=True):
            column.append(value)
    return result


def columns(staged: list[Staged]) -> list[list[Any]]:
    """The alert columns: each alert once, in its last staged state, with the version it must
    have in the database now (0: it must not exist yet). Versions that do not follow one
    another within the batch are a version conflict, as on SQLite."""
    latest: dict[str, tuple[AlertRecord, int]] = {}
    for item in staged:
        record = item.change.record
        prior = latest.get(record.alert.id)
        if prior is None:
            latest[record.alert.id] = (record, record.alert.version - 1)
        elif record.alert.version != prior[0].alert.version + 1:
            raise VersionConflict()
        else:
            latest[record.alert.id] = (record, prior[1])
    result: list[list[Any]] = [[] for _ in range(10)]
    for record, expected in latest.values():
        alert = record.alert
        row = (
            alert.id,
            alert.hospital_id,
            alert.status,
            alert.priority,
            record.created_ts,
            record.responded_ts,
            record.escalation_due,
            alert.version,
            expected,
            alert.model_dump_json(by_alias=True),
        )
        for column, value in zip(result, row, strict=True):
            column.append(value)
    return result
