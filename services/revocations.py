"""The durable copy of token revocations (CONTRACT 11): a seam with one implementation per
store, sharing the store's own connection or pool, so a revocation survives a restart and a
starting node refuses what was revoked before it started.

Rules only widen: storing a user's moment keeps the later of the old and new one, and a jti once
stored stays. The rows are tiny and few (one per user revoked, one per token revoked), so they
are kept rather than pruned: a jti's token may live as long as its issuer chose.
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING, Protocol

from rpc.revocation import RevocationRules
from services.store_postgres import PostgresAlertStore
from services.store_sqlite import SqliteAlertStore

if TYPE_CHECKING:
    from services.postgres_pool import Connection

UPSERT_SUBJECT = """
    INSERT INTO token_revocations (kind, value, issued_before, revoked_ts, revoked_by)
    VALUES ('subject', {0}, {1}, {2}, {3})
    ON CONFLICT (kind, value) DO UPDATE SET
        issued_before = excluded.issued_before,
        revoked_ts = excluded.revoked_ts,
        revoked_by = excluded.revoked_by
    WHERE excluded.issued_before > token_revocations.issued_before
"""
INSERT_JTI = """
    INSERT INTO token_revocations (kind, value, issued_before, revoked_ts, revoked_by)
    VALUES ('token', {0}, NULL, {1}, {2})
    ON CONFLICT (kind, value) DO NOTHING
"""
SELECT_ALL = "SELECT kind, value, issued_before FROM token_revocations"


class RevocationStore(Protocol):
    async def revoke_subject(self, sub: str, issued_before: float, at: float, by: str) -> None:
        """Refuse `sub`'s tokens issued before `issued_before` from now on."""

    async def revoke_token(self, jti: str, at: float, by: str) -> None: ...

    async def load(self) -> RevocationRules: ...


def _rules(rows: list[tuple[str, str, float | None]]) -> RevocationRules:
    subjects: dict[str, float] = {}
    tokens: set[str] = set()
    for kind, value, before in rows:
        if kind == "subject" and before is not None:
            subjects[value] = max(before, subjects.get(value, before))
        elif kind == "token":
            tokens.add(value)
    return RevocationRules(subjects, frozenset(tokens))


class SqliteRevocations:
    """Writes go through the store's write queue (one writer per file), reads through its
    reader connection."""

    def __init__(self, store: SqliteAlertStore) -> None:
        self.store = store

    async def revoke_subject(self, sub: str, issued_before: float, at: float, by: str) -> None:
        sql = UPSERT_SUBJECT.format("?", "?", "?", "?")
        await self.store.write_step(lambda conn: conn.execute(sql, (sub, issued_before, at, by)))

    async def revoke_token(self, jti: str, at: float, by: str) -> None:
        sql = INSERT_JTI.format("?", "?", "?")
        await self.store.write_step(lambda conn: conn.execute(sql, (jti, at, by)))

    async def load(self) -> RevocationRules:
        def read(conn: sqlite3.Connection) -> list[tuple[str, str, float | None]]:
            return list(conn.execute(SELECT_ALL).fetchall())

        return _rules(await self.store.read(read))


class PostgresRevocations:
    """Each statement is idempotent (an upsert that only widens), so it is safe to repeat on
    a fresh connection when the first one turns out to be dead."""

    def __init__(self, store: PostgresAlertStore) -> None:
        self.store = store

    async def revoke_subject(self, sub: str, issued_before: float, at: float, by: str) -> None:
        sql = UPSERT_SUBJECT.format("$1", "$2", "$3", "$4")

        async def write(conn: Connection) -> None:
            await conn.execute(sql, sub, issued_before, at, by)

        await self.store.run(write)

    async def revoke_token(self, jti: str, at: float, by: str) -> None:
        sql = INSERT_JTI.format("$1", "$2", "$3")

        async def write(conn: Connection) -> None:
            await conn.execute(sql, jti, at, by)

        await self.store.run(write)

    async def load(self) -> RevocationRules:
        async def read(conn: Connection) -> list[tuple[str, str, float | None]]:
            rows = await conn.fetch(SELECT_ALL)
            return [(row[0], row[1], row[2]) for row in rows]

        return _rules(await self.store.run(read))


def revocation_store(store: object) -> RevocationStore:
    """The revocation seam on the store the server opened."""
    if isinstance(store, PostgresAlertStore):
        return PostgresRevocations(store)
    if isinstance(store, SqliteAlertStore):
        return SqliteRevocations(store)
    raise TypeError(f"no revocation store for {type(store).__name__}")
