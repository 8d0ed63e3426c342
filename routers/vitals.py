"""The `vitals` router (CONTRACT 8): bedside readings in, latest values, history and the live
stream out.

Roles: only `service` (devices, gateways) reports; everyone who may see the hospital reads and
subscribes. The hospital in each input is checked by the router before a procedure runs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, cast

from rpc.context import Context
from rpc.errors import invalid_params
from rpc.router import Router
from schemas.vitals import (
    LatestVitals,
    LatestVitalsInput,
    ReportVitalsInput,
    ReportVitalsResult,
    SubscribeVitalsInput,
    VitalsHistory,
    VitalsHistoryInput,
    VitalsUpdate,
    parse_timestamp,
)
from services.container import Services
from services.vitals_store import Cursor, StoredReading

REPORTERS = frozenset({"service"})

router = Router()


def services(ctx: Context) -> Services:
    return cast(Services, ctx.services)


def format_cursor(cursor: Cursor) -> str:
    return f"{cursor[0]!r}_{cursor[1]}"


def parse_cursor(raw: str) -> Cursor:
    ts, sep, n = raw.partition("_")
    try:
        if not sep:
            raise ValueError
        return float(ts), int(n)
    except ValueError:
        raise invalid_params({"cursor": "Not a cursor this procedure returned"}) from None


@router.mutation(roles=REPORTERS)
async def report(ctx: Context, input: ReportVitalsInput) -> ReportVitalsResult:
    """Store a device's readings of one patient (1-100, one transaction) and judge them
    against the hospital's threshold rules; returns the alerts they raised or updated."""
    accepted, alerts = await services(ctx).vitals.report(input, ctx.user.sub)
    return ReportVitalsResult(accepted=accepted, alerts=alerts)


@router.query()
async def latest(ctx: Context, input: LatestVitalsInput) -> LatestVitals:
    """The newest reading of each kind of a patient."""
    readings = await services(ctx).vitals.latest(input.hospital_id, input.patient_id)
    return LatestVitals(patient_id=input.patient_id, readings=[r.wire() for r in readings])


@router.query()
async def history(ctx: Context, input: VitalsHistoryInput) -> VitalsHistory:
    """A patient's readings, newest first (by measuredAt), a page at a time."""
    since = None if input.since is None else parse_timestamp(input.since)
    cursor = None if input.cursor is None else parse_cursor(input.cursor)
    items, after = await services(ctx).vitals.store.history(
        input.hospital_id, input.patient_id, input.kind, since, input.limit, cursor
    )
    return VitalsHistory(
        items=[r.wire() for r in items],
        next_cursor=None if after is None else format_cursor(after),
    )


@router.subscription()
async def subscribe(ctx: Context, input: SubscribeVitalsInput) -> AsyncIterator[VitalsUpdate]:
    """The latest value of each patient and kind at once, then changes: at most `maxRateHz`
    updates a second, each with the newest value of the kinds that changed (conflated: a
    subscriber that falls behind never gets a backlog). A subscription to one patient of whom
    nothing is known yet starts with an update holding no readings. Not resumable: vitals are
    not alert events."""
    vitals = services(ctx).vitals
    patient, kinds = input.patient_id, frozenset(input.kinds or ())

    def accepts(reading: StoredReading) -> bool:
        return (patient is None or reading.patient_id == patient) and (
            not kinds or reading.kind in kinds
        )

    async def snapshot() -> list[StoredReading]:
        return await vitals.store.latest(input.hospital_id, patient, input.kinds)

    stream: Any = vitals.hub.vitals_stream(
        input.hospital_id, patient, accepts, input.max_rate_hz, snapshot
    )
    return cast(AsyncIterator[VitalsUpdate], stream)
