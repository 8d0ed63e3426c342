"""The integrations' storage seam (services/integration_store.py), the same contract on SQLite
and PostgreSQL: API keys, remembered inbound responses, webhook endpoints, their progress and
attempts, all surviving a reopen of the store."""

from __future__ import annotations

import pytest

from services.container import make_integration_store
from services.integration_store import (
    ApiKeyRow,
    DeliveryAttempt,
    IntegrationStore,
    Progress,
    RememberedResponse,
    WebhookRow,
)
from tests.services.conftest import T0
from tests.services.stores import AnyStore, Backend, open_store


@pytest.fixture
def integrations(store: AnyStore) -> IntegrationStore:
    return make_integration_store(store)


def key_row(key_id: str = "key_1", hospital: str = "h1", prefix: str = "awk_abcdefgh") -> ApiKeyRow:
    return ApiKeyRow(
        key_id=key_id,
        hospital_id=hospital,
        name="nurse call",
        prefix=prefix,
        key_hash="0" * 63 + key_id[-1],
        scopes=("alerts:write", "vitals:write"),
        signing_secret=None,
        created_ts=T0,
    )


def hook_row(webhook_id: str = "wh_1", hospital: str = "h1") -> WebhookRow:
    return WebhookRow(
        webhook_id=webhook_id,
        hospital_id=hospital,
        url="https://pager.example/hook",
        events=("alert.created",),
        description=None,
        secret="whsec_x",
        created_ts=T0,
        cursor=7,
    )


async def test_api_keys_are_listed_per_hospital_and_found_by_prefix(
    integrations: IntegrationStore,
) -> None:
    await integrations.add_api_key(key_row("key_1"))
    await integrations.add_api_key(key_row("key_2", prefix="awk_zzzzzzzz"))
    await integrations.add_api_key(key_row("key_3", hospital="h2"))
    assert [r.key_id for r in await integrations.api_keys("h1")] == ["key_1", "key_2"]
    found = await integrations.api_keys_by_prefix("awk_abcdefgh")
    assert sorted(r.key_id for r in found) == ["key_1", "key_3"]
    assert found[0].scopes == ("alerts:write", "vitals:write")
    assert await integrations.api_key("missing") is None


async def test_a_revoked_key_is_neither_listed_nor_found(integrations: IntegrationStore) -> None:
    await integrations.add_api_key(key_row("key_1"))
    assert await integrations.revoke_api_key("key_1", T0 + 5) is True
    assert await integrations.revoke_api_key("key_1", T0 + 6) is False  # once
    assert await integrations.api_keys("h1") == []
    assert await integrations.api_keys_by_prefix("awk_abcdefgh") == []
    row = await integrations.api_key("key_1")
    assert row is not None
    assert row.revoked_ts == T0 + 5


async def test_last_use_is_kept(integrations: IntegrationStore) -> None:
    await integrations.add_api_key(key_row("key_1"))
    await integrations.touch_api_key("key_1", T0 + 60)
    row = await integrations.api_key("key_1")
    assert row is not None
    assert row.last_used_ts == T0 + 60


async def test_the_first_response_remembered_wins_within_the_window(
    integrations: IntegrationStore,
) -> None:
    first = RememberedResponse("f1", 201, b'{"id":"a1"}', T0)
    second = RememberedResponse("f2", 201, b'{"id":"a2"}', T0 + 1)
    assert await integrations.recall_response("h1", "k", T0 - 10) is None
    assert await integrations.remember_response("h1", "k", first, T0 - 10) == first
    assert await integrations.remember_response("h1", "k", second, T0 - 10) == first
    assert await integrations.recall_response("h1", "k", T0 - 10) == first
    assert await integrations.recall_response("h2", "k", T0 - 10) is None  # per hospital
    # Past the window the key is free again.
    assert await integrations.recall_response("h1", "k", T0 + 0.5) is None
    assert await integrations.remember_response("h1", "k", second, T0 + 0.5) == second
    assert await integrations.prune_responses(T0 + 2) == 1


async def test_webhook_progress_and_attempts(integrations: IntegrationStore) -> None:
    await integrations.add_webhook(hook_row("wh_1"))
    await integrations.add_webhook(hook_row("wh_2", hospital="h2"))
    assert [w.webhook_id for w in await integrations.webhooks("h1")] == ["wh_1"]
    failed = DeliveryAttempt("wh_1", "0000000000000008", 1, "failed", 500, "HTTP 500", T0 + 1)
    await integrations.save_progress("wh_1", Progress(7, 1, T0 + 2, T0 + 1), [failed])
    delivered = DeliveryAttempt("wh_1", "0000000000000008", 2, "delivered", 200, None, T0 + 2)
    await integrations.save_progress("wh_1", Progress(8, 0, T0 + 2, None), [delivered])
    row = await integrations.webhook("wh_1")
    assert row is not None
    assert (row.cursor, row.attempt, row.failing_since, row.enabled) == (8, 0, None, True)
    assert await integrations.deliveries("wh_1", 10) == [delivered, failed]
    assert await integrations.deliveries("wh_1", 1) == [delivered]
    await integrations.save_progress("wh_1", Progress(8, 3, T0 + 9, T0 + 3, enabled=False))
    assert [w.webhook_id for w in await integrations.enabled_webhooks()] == ["wh_2"]
    assert await integrations.prune_attempts(T0 + 1.5) == 1
    assert await integrations.delete_webhook("wh_1") is True
    assert await integrations.delete_webhook("wh_1") is False
    assert await integrations.deliveries("wh_1", 10) == []


async def test_everything_survives_a_reopen(backend: Backend) -> None:
    async with open_store(backend) as store:
        integrations = make_integration_store(store)
        await integrations.add_api_key(key_row("key_1"))
        await integrations.add_webhook(hook_row("wh_1"))
        response = RememberedResponse("f", 200, b"{}", T0)
        await integrations.remember_response("h1", "k", response, T0 - 1)
    async with open_store(backend) as store:
        integrations = make_integration_store(store)
        assert [r.key_id for r in await integrations.api_keys("h1")] == ["key_1"]
        assert [w.cursor for w in await integrations.webhooks("h1")] == [7]
        assert await integrations.recall_response("h1", "k", T0 - 1) == response
