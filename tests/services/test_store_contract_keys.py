"""createAlert idempotency keys (CONTRACT 7) on every store (the `backend` fixture: SQLite and
PostgreSQL): a repeat with the same key and hospital within 24 h returns the alert the first
call created and creates nothing, also when the duplicates race in one batch or on two writers
of one database; the key and its alert commit together; retention forgets keys after 24 h."""

from __future__ import annotations

import asyncio
from typing import cast

import pytest
from pydantic import ValidationError

from schemas.alerts import CreateAlertInput
from services import lifecycle
from services.alerts import AlertService
from services.config import DEFAULT_TARGETS
from services.container import Services
from services.postgres_schema import CLAIM_KEYS
from services.store import IDEMPOTENCY_TTL_S, AlertRecord, StagedChange, Transaction
from tests.services.conftest import FakeClock, alert_input
from tests.services.stores import AnyStore, Backend, open_store, published


def keyed(key: str, hospital_id: str = "h1", title: str = "Bed 4 call button") -> CreateAlertInput:
    base = alert_input(hospital_id=hospital_id, title=title).model_dump(by_alias=True)
    return CreateAlertInput.model_validate({**base, "idempotencyKey": key})


def service(store: AnyStore, clock: FakeClock) -> AlertService:
    return AlertService(store, dict(DEFAULT_TARGETS), clock)


def counts(backend: Backend) -> tuple[int, int, int]:
    """(alerts, events, keys) as committed."""
    row = backend.query(
        "SELECT (SELECT COUNT(*) FROM alerts), (SELECT COUNT(*) FROM events), "
        "(SELECT COUNT(*) FROM idempotency_keys)"
    )[0]
    return int(row[0]), int(row[1]), int(row[2])


async def test_a_repeat_returns_the_first_alert_and_creates_nothing(
    backend: Backend, store: AnyStore, alerts: AlertService, clock: FakeClock
) -> None:
    first = await alerts.create(keyed("dev-7:0001"), "device-7")
    clock.advance(60)
    again = await alerts.create(keyed("dev-7:0001", title="A retry may differ"), "device-7")
    assert again == first
    assert counts(backend) == (1, 1, 1)
    assert len(published(store).events) == 1

    # Later repeats get the alert as it stands now, still without creating anything.
    acked = await alerts.acknowledge(first.id, "nurse-1", None)
    assert await alerts.create(keyed("dev-7:0001"), "device-7") == acked
    assert counts(backend) == (1, 2, 1)


async def test_keys_are_per_hospital_and_calls_without_one_always_create(
    backend: Backend, alerts: AlertService
) -> None:
    h1 = await alerts.create(keyed("k"), "device-7")
    h2 = await alerts.create(keyed("k", hospital_id="h2"), "device-7")
    other = await alerts.create(keyed("k2"), "device-7")
    plain = [await alerts.create(alert_input(), "device-7") for _ in range(2)]
    assert len({h1.id, h2.id, other.id, *(a.id for a in plain)}) == 5
    assert counts(backend) == (5, 5, 3)


async def test_after_24_hours_the_key_makes_a_new_alert(
    backend: Backend, alerts: AlertService, clock: FakeClock
) -> None:
    first = await alerts.create(keyed("k"), "device-7")
    clock.advance(IDEMPOTENCY_TTL_S)
    assert await alerts.create(keyed("k"), "device-7") == first  # 24 h to the second: kept
    clock.advance(1)
    second = await alerts.create(keyed("k"), "device-7")  # not yet pruned, but expired
    assert second.id != first.id
    assert await alerts.create(keyed("k"), "device-7") == second
    assert backend.query("SELECT alert_id FROM idempotency_keys") == [(second.id,)]


async def test_duplicates_in_one_batch_create_one_alert(
    backend: Backend, store: AnyStore, alerts: AlertService
) -> None:
    results = await asyncio.gather(*(alerts.create(keyed("k"), "device-7") for _ in range(5)))
    assert published(store).calls == 1  # one batch: the later ones found the first's key
    assert len({a.id for a in results}) == 1
    assert counts(backend) == (1, 1, 1)


async def test_duplicates_on_two_writers_of_one_database_create_one_alert(
    backend: Backend, clock: FakeClock
) -> None:
    async with open_store(backend) as first, open_store(backend) as second:
        keys = [f"k{n % 3}" for n in range(12)]
        calls = [
            service(store, clock).create(keyed(key), "device-7")
            for key in keys
            for store in (first, second)
        ]
        results = await asyncio.gather(*calls)
    ids: dict[str, set[str]] = {}
    for key, alert in zip([k for k in keys for _ in range(2)], results, strict=True):
        ids.setdefault(key, set()).add(alert.id)
    assert all(len(same) == 1 for same in ids.values()), ids
    assert counts(backend) == (3, 3, 3)


async def test_a_duplicate_committed_first_elsewhere_is_found_on_the_run_again(
    backend: Backend, clock: FakeClock
) -> None:
    """The race the primary key decides: the second writer looked the key up (not there) and
    staged its alert, then the first writer committed the key. The second's commit is refused,
    its batch runs again, finds the key and returns the first alert; its other work commits."""
    async with open_store(backend) as first, open_store(backend) as second:
        looked_up = asyncio.Event()
        go_on = asyncio.Event()

        async def hold_the_batch(tx: Transaction) -> None:
            looked_up.set()  # the create before this one in the batch has staged
            await go_on.wait()

        racing = asyncio.gather(
            service(second, clock).create(keyed("k"), "device-7"),
            second.transact(hold_the_batch),
            service(second, clock).create(alert_input(title="Other"), "device-8"),
        )
        await asyncio.wait_for(looked_up.wait(), 5)
        winner = await service(first, clock).create(keyed("k"), "device-7")
        go_on.set()
        duplicate, _, other = await asyncio.wait_for(racing, 10)

        assert duplicate == winner
        assert second.reruns == 1
        assert other.id != winner.id
        assert counts(backend) == (2, 2, 1)


async def test_a_key_is_committed_with_its_alert_or_not_at_all(
    backend: Backend, store: AnyStore, alerts: AlertService, clock: FakeClock
) -> None:
    change = lifecycle.create("al_x", alert_input(), "device-7", clock())

    async def unwritable(tx: Transaction) -> None:
        record = AlertRecord(change.alert, clock(), None, None)
        staged = StagedChange(record, change.event_type, "device-7", clock(), None, "k")
        tx.stage(staged, lambda seq: cast(bytes, None))  # events.payload is NOT NULL

    with pytest.raises(backend.integrity_error):
        await store.transact(unwritable)
    assert counts(backend) == (0, 0, 0)
    created = await alerts.create(keyed("k"), "device-7")  # the key is free: this one creates
    assert created.id != "al_x"
    assert backend.query("SELECT alert_id FROM idempotency_keys") == [(created.id,)]


async def test_retention_forgets_keys_after_24_hours(
    backend: Backend, services: Services, clock: FakeClock
) -> None:
    old = await services.alerts.create(keyed("old"), "device-7")
    clock.advance(IDEMPOTENCY_TTL_S - 10)
    recent = await services.alerts.create(keyed("recent"), "device-7")
    clock.advance(11)
    await services.prune()
    assert backend.query("SELECT alert_id FROM idempotency_keys") == [(recent.id,)]
    assert await services.alerts.create(keyed("recent"), "device-7") == recent
    assert (await services.alerts.create(keyed("old"), "device-7")).id != old.id


def test_the_key_is_one_line_of_1_to_128_characters() -> None:
    assert keyed("x" * 128).idempotency_key == "x" * 128
    for bad in ("", "x" * 129, "line\nbreak", "tab\there", "\u202eevil"):
        with pytest.raises(ValidationError):
            keyed(bad)
    with pytest.raises(ValidationError):
        CreateAlertInput.model_validate(
            {
                "hospitalId": "h1",
                "type": "fall",
                "priority": "high",
                "title": "t",
                "idempotencyKey": 7,
            }
        )


def test_the_database_function_expires_keys_after_the_same_time() -> None:
    assert f"excluded.created_ts - {IDEMPOTENCY_TTL_S:g};" in CLAIM_KEYS
