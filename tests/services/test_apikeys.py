"""API keys (services/apikeys.py) on each store: hashing, constant-time comparison, scopes,
revocation across nodes (broadcast, and the store read as the backstop), last use."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from rpc.cluster_memory import InMemoryClusterState, MemoryHub
from services.apikeys import CACHE_S, ApiKeyService
from services.container import make_integration_store
from tests.polling import until
from tests.services.conftest import FakeClock
from tests.services.stores import AnyStore


def node(store: AnyStore, hub: MemoryHub, name: str, clock: FakeClock) -> ApiKeyService:
    cluster = InMemoryClusterState(name, hub)
    return ApiKeyService(make_integration_store(store), cluster, clock)


async def test_only_a_hash_of_the_key_is_stored(store: AnyStore, clock: FakeClock) -> None:
    keys = ApiKeyService(make_integration_store(store), None, clock)
    row, key = await keys.create("h1", "monitor", ["alerts:write"], signed=True)
    assert key.startswith("awk_")
    assert len(key) == 4 + 43
    assert row.key_hash == hashlib.sha256(key.encode()).hexdigest()
    assert row.signing_secret is not None
    assert row.signing_secret.startswith("awsig_")
    stored = await make_integration_store(store).api_key(row.key_id)
    assert stored is not None
    assert key not in repr(stored)
    found = await keys.authenticate(key)
    assert found is not None
    assert (found.hospital_id, found.scopes) == ("h1", frozenset({"alerts:write"}))
    assert await keys.authenticate(key[:-1] + ("A" if key[-1] != "A" else "B")) is None
    assert await keys.authenticate("Bearer " + key) is None


async def test_hashes_are_compared_in_constant_time(
    store: AnyStore, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = ApiKeyService(make_integration_store(store), None, clock)
    _, key = await keys.create("h1", "monitor", ["alerts:write"], signed=False)
    compared: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return bool(real(a, b))

    monkeypatch.setattr(hmac, "compare_digest", spy)
    assert await keys.authenticate(key) is not None
    assert compared
    assert all(len(a) == len(b) == 64 for a, b in compared)


async def test_a_revocation_reaches_every_node_at_once(store: AnyStore, clock: FakeClock) -> None:
    hub = MemoryHub()
    first, second = node(store, hub, "n1", clock), node(store, hub, "n2", clock)
    row, key = await first.create("h1", "monitor", ["alerts:write"], signed=False)
    assert await second.authenticate(key) is not None  # cached on the second node now
    assert await first.revoke(row.key_id) is True
    assert await second.authenticate(key) is None  # the broadcast, not the cache's age
    assert await first.authenticate(key) is None


async def test_without_the_broadcast_a_revocation_is_read_within_a_second(
    store: AnyStore, clock: FakeClock
) -> None:
    hub_a, hub_b = MemoryHub(), MemoryHub()  # two nodes that cannot hear each other
    first, second = node(store, hub_a, "n1", clock), node(store, hub_b, "n2", clock)
    row, key = await first.create("h1", "monitor", ["alerts:write"], signed=False)
    assert await second.authenticate(key) is not None
    await first.revoke(row.key_id)

    async def refused() -> bool:
        return await second.authenticate(key) is None

    await until(refused, "the other node to refuse the revoked key", CACHE_S + 0.5)


async def test_last_use_is_written_at_most_once_a_minute(store: AnyStore, clock: FakeClock) -> None:
    integrations = make_integration_store(store)
    keys = ApiKeyService(integrations, None, clock)
    row, key = await keys.create("h1", "monitor", ["alerts:write"], signed=False)
    await keys.authenticate(key)
    await keys.close()  # the write is off the request's path: wait for it here
    first = clock.now
    clock.advance(30)
    await keys.authenticate(key)
    await keys.close()
    stored = await integrations.api_key(row.key_id)
    assert stored is not None
    assert stored.last_used_ts == first
    clock.advance(31)
    await keys.authenticate(key)
    await keys.close()
    stored = await integrations.api_key(row.key_id)
    assert stored is not None
    assert stored.last_used_ts == first + 61
