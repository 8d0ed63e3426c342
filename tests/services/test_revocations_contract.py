"""Token revocations in the store (services/revocations.py) on every store (the `backend`
fixture: SQLite and PostgreSQL): what is stored is loaded again by a store opened later (a
restart, another node), and a user's moment only moves later."""

from __future__ import annotations

import asyncio

from rpc.revocation import Revocations
from services.revocations import revocation_store
from tests.services.stores import Backend, open_store


async def test_revocations_survive_reopening_and_only_widen(backend: Backend) -> None:
    async with open_store(backend) as store:
        revocations = revocation_store(store)
        assert (await revocations.load()).subjects == {}
        await revocations.revoke_subject("u1", 200.0, at=1000.0, by="admin-1")
        await revocations.revoke_subject("u1", 150.0, at=1001.0, by="admin-2")  # earlier: kept
        await revocations.revoke_subject("u2", 50.0, at=1002.0, by="admin-1")
        await revocations.revoke_subject("u2", 80.0, at=1003.0, by="admin-1")  # later: taken
        await revocations.revoke_token("jti-1", at=1004.0, by="admin-1")
        await revocations.revoke_token("jti-1", at=1005.0, by="admin-2")  # a repeat: no error
    async with open_store(backend) as reopened:
        rules = await revocation_store(reopened).load()
    assert dict(rules.subjects) == {"u1": 200.0, "u2": 80.0}
    assert rules.tokens == frozenset({"jti-1"})
    assert backend.query(
        "SELECT revoked_by FROM token_revocations WHERE kind = 'subject' AND value = 'u1'"
    ) == [("admin-1",)]
    loaded = Revocations()
    loaded.merge(rules)
    assert len(loaded) == 3


async def test_a_revocation_rides_the_write_queue_with_other_work(backend: Backend) -> None:
    """On SQLite it is a step of the store's write batch: one running beside a prune commits
    both (nothing of one rolls the other back)."""
    async with open_store(backend) as store:
        revocations = revocation_store(store)
        await asyncio.gather(
            revocations.revoke_token("jti-2", at=1.0, by="admin-1"),
            store.prune_keys(0.0),
            revocations.revoke_subject("u3", 10.0, at=2.0, by="admin-1"),
        )
        rules = await revocations.load()
    assert rules.tokens == frozenset({"jti-2"})
    assert dict(rules.subjects) == {"u3": 10.0}
