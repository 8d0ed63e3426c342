"""The alert store's seam: what the domain needs from storage, whatever holds it.

`services/store_sqlite.py` is the embedded default (aiosqlite, WAL). Writes go through
`transact`: an operation reads alerts and stages changes, and the store commits each change
with its event in one transaction, then calls `on_commit` with the committed events in order,
before the operation's caller resumes (commit, then publish).

A store batches the operations waiting for it: they are staged one after another in the event
loop, then the whole batch goes to the database in one round trip (one transaction: the event
position check, each alert's version check, every write, the commit), so that a batch waits
for the database once, not once per statement. An operation that raises fails
alone; a failed write fails the whole batch, and nothing of it is published.

A failed version check (another writer on the same database changed an alert the batch read,
or took an idempotency key it claims) is not the callers' fault: the store forgets what it
read of the batch's alerts and runs every operation of the batch again on fresh reads, up to
CONFLICT_RETRIES times, so each caller gets the answer it would get with one writer (a domain
CONFLICT from the lifecycle if the alert moved on, success if the change still applies).

Idempotency keys (CONTRACT 7): a create may carry a key; the store writes (hospital, key) ->
alert id in the same transaction as the alert, so a crash cannot leave one without the other,
and the table's primary key decides between concurrent duplicates (the loser's batch runs
again and finds the key).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from rpc.errors import ErrorCode, RpcError
from schemas.alerts import Alert, AlertEventType, AlertStatus, Priority

T = TypeVar("T")

EVENT_ID_DIGITS = 16
# Each hospital's newest events that retention never prunes (CONTRACT 4: "at least the last
# 100 events of each hospital are always replayable").
RETAINED_EVENTS = 100
# How long a createAlert idempotency key is remembered (CONTRACT 7: "within 24 h").
IDEMPOTENCY_TTL_S = 24 * 3600.0
# Times a batch runs again on fresh reads after a failed version check before its callers
# get CONFLICT (each time means another writer changed one of its alerts meanwhile).
CONFLICT_RETRIES = 5


def format_event_id(seq: int) -> str:
    """Fixed width, so that ids compare as strings in the same order as numbers."""
    return f"{seq:0{EVENT_ID_DIGITS}d}"


def parse_event_id(value: str) -> int | None:
    """The position an event id names, or None when it is not one of ours."""
    if not value.isascii() or not value.isdigit() or len(value) > 19:
        return None
    return int(value)


@dataclass(frozen=True, slots=True)
class AlertRecord:
    """An alert with the store's bookkeeping that is not part of the wire shape."""

    alert: Alert
    created_ts: float
    responded_ts: float | None  # first acknowledgement (or resolution): response metrics
    escalation_due: float | None  # when it escalates by itself; None unless active


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """A committed event: `payload` is the AlertEvent exactly as it goes on the wire."""

    seq: int
    hospital_id: str
    alert_id: str
    payload: bytes
    id: str = field(init=False)  # the wire id, formatted once and shared by every subscriber
    # time.perf_counter() when this node committed it (`stamp`); 0.0 when another node did.
    committed_at: float = field(default=0.0, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "id", format_event_id(self.seq))

    def stamp(self, committed_at: float) -> None:
        """Record the commit time, once, as the committing node hands its events on (the
        delivery-delay histogram counts from it)."""
        object.__setattr__(self, "committed_at", committed_at)


async def timed(work: Awaitable[T], observe: Callable[[float], None] | None) -> T:
    """`work`'s result; `observe`, when set, hears how long it took (seconds) if it succeeded.
    The stores time their batch commits with it."""
    if observe is None:
        return await work
    start = time.perf_counter()
    result = await work
    observe(time.perf_counter() - start)
    return result


class VersionConflict(RpcError):
    """A version check failed at commit: an alert the batch read (or an idempotency key it
    claimed) was changed by another writer. The store runs the batch again on fresh reads;
    only when that keeps failing does a caller see it, as CONFLICT."""

    def __init__(self) -> None:
        super().__init__(
            ErrorCode.CONFLICT, "The alert was changed by another writer at the same time; retry"
        )


@dataclass(frozen=True, slots=True)
class StagedChange:
    record: AlertRecord
    event_type: AlertEventType
    actor_id: str
    occurred_ts: float
    detail: str | None  # note, reason or resolution: kept in the audit log
    # A create's idempotency key, stored as (hospital, key) -> alert id with the alert.
    idempotency_key: str | None = None


@dataclass(frozen=True, slots=True)
class ResponseStats:
    due: int  # alerts whose response target has passed or that were answered
    on_time: int
    average_seconds: float | None


class Transaction(Protocol):
    async def get(self, alert_id: str) -> AlertRecord | None:
        """The alert as this transaction sees it (its own staged changes included)."""

    def stage(self, change: StagedChange, make_event: Callable[[int], bytes]) -> StoredEvent:
        """Stage a change; `make_event(seq)` encodes its event once the position is known.
        Should another writer on the same database take that position before the commit,
        the store numbers the event again (`make_event` is called once more, so it depends on
        nothing else) and the event returned here is not the one committed: `on_commit`
        carries that one."""

    async def created_by_key(self, hospital_id: str, key: str, since: float) -> str | None:
        """The id of the alert a create with this idempotency key made at or after `since`
        (this transaction's own staged creates included); None when there is none."""


class AlertStore(Protocol):
    on_commit: Callable[[Sequence[StoredEvent]], None]
    # Hears each write batch's commit time in seconds (`timed`); None when nobody listens.
    on_commit_seconds: Callable[[float], None] | None
    commits: int  # write transactions committed so far (each may carry many operations)

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def transact(self, operation: Callable[[Transaction], Awaitable[T]]) -> T:
        """Run `operation` in a write transaction; its staged changes commit together, or
        none do (the exception propagates)."""

    async def get(self, alert_id: str) -> AlertRecord | None: ...

    async def list_alerts(
        self, hospital_id: str, status: AlertStatus | None, limit: int, cursor: str | None
    ) -> tuple[list[Alert], str | None]: ...

    async def events_after(
        self, hospital_id: str, after_seq: int, limit: int, alert_id: str | None = None
    ) -> list[StoredEvent]: ...

    async def newest_events(self, hospital_id: str, limit: int) -> list[StoredEvent]: ...

    async def positions(self, hospital_id: str) -> tuple[int, int]:
        """(newest event seq, highest pruned seq) of a hospital; 0 for none."""

    async def open_counts(self, hospital_id: str) -> tuple[int, int]:
        """(alerts not resolved, of those critical)."""

    async def response_stats(
        self, hospital_id: str, since: float, now: float, targets: dict[Priority, float]
    ) -> ResponseStats: ...

    async def escalations_due(self) -> list[tuple[str, float]]:
        """(alert id, due time) of every alert that will escalate by itself."""

    async def prune(self, before_ts: float) -> dict[str, int]:
        """Remove events older than `before_ts`, never one of a hospital's newest
        RETAINED_EVENTS nor one newer than the oldest event of an alert that is not resolved.
        Returns {hospital: highest pruned seq}."""

    async def prune_keys(self, before_ts: float) -> int:
        """Forget idempotency keys stored before `before_ts`; returns how many."""

    async def healthy(self) -> bool: ...
