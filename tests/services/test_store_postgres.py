"""What only the PostgreSQL store has, on a real server: migrations raced by separate processes,
dense per-hospital positions with several nodes writing, durable commits, and a database that
goes away (a terminated backend, an unreachable server, a commit whose answer was lost).
Everything the seam promises runs on every store in test_store_contract*.py."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from rpc.connections import ConnectionRegistry
from rpc.errors import ErrorCode, RpcError
from services import lifecycle
from services.alerts import AlertService, event_payload
from services.config import DEFAULT_TARGETS, DomainConfig
from services.container import Services
from services.postgres_schema import SCHEMA_VERSION
from services.sqlite_schema import SchemaError
from services.store import AlertRecord, StagedChange, Transaction
from services.store_postgres import PostgresAlertStore
from tests.integration.server import ROOT
from tests.polling import until
from tests.postgres import TcpProxy, connect, fetch, terminate_backends
from tests.services.conftest import FakeClock, alert_input, decode
from tests.services.stores import AnyStore, PostgresBackend, open_store, published

# A node starting: connect, say so, wait for the word, then open the store (migrating it)
# and report what version the schema had when this node's migration ran.
NODE = """
import asyncio, sys
from services.postgres_pool import create_pool
from services.postgres_schema import migrate
from services.store_postgres import PostgresAlertStore

async def main(url):
    pool = await create_pool(url)
    async with pool.acquire() as conn:
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        found = await migrate(conn)
    await pool.close()
    store = PostgresAlertStore(url)
    await store.open()
    await store.close()
    print("found", found, flush=True)

asyncio.run(main(sys.argv[1]))
"""


def service(store: AnyStore, clock: FakeClock) -> AlertService:
    return AlertService(store, dict(DEFAULT_TARGETS), clock)


@pytest.fixture
async def pg_store(postgres_url: str) -> AsyncIterator[PostgresAlertStore]:
    async with open_store(PostgresBackend(postgres_url)) as store:
        assert isinstance(store, PostgresAlertStore)
        yield store


async def test_three_processes_racing_migrations_apply_them_once(postgres_url: str) -> None:
    nodes = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            NODE,
            postgres_url,
            cwd=ROOT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(3)
    ]
    try:
        for node in nodes:  # all three connected before any starts
            assert node.stdout is not None
            assert await asyncio.wait_for(node.stdout.readline(), 30) == b"ready\n"
        for node in nodes:
            assert node.stdin is not None
            node.stdin.write(b"go\n")
        outputs = await asyncio.wait_for(asyncio.gather(*(n.communicate() for n in nodes)), 60)
    finally:
        for node in nodes:
            if node.returncode is None:
                node.kill()
                await node.wait()
    assert [n.returncode for n in nodes] == [0, 0, 0], [err.decode()[-2000:] for _, err in outputs]
    found = sorted(int(out.split()[-1]) for out, _ in outputs)
    assert found == [0, SCHEMA_VERSION, SCHEMA_VERSION]  # one applied, two found it done
    rows = await fetch(postgres_url, "SELECT version FROM schema_migrations ORDER BY version")
    assert rows == [(v,) for v in range(1, SCHEMA_VERSION + 1)]


async def test_a_newer_schema_is_refused(postgres_url: str) -> None:
    async with open_store(PostgresBackend(postgres_url)):
        pass
    conn = await connect(postgres_url)
    try:
        await conn.execute(
            "INSERT INTO schema_migrations (version) VALUES ($1)", SCHEMA_VERSION + 1
        )
    finally:
        await conn.close()
    store = PostgresAlertStore(postgres_url)
    with pytest.raises(SchemaError, match=r"knows up to"):
        await store.open()
    assert store._pool is None  # refusing left no connection behind
    assert not await store.healthy()


async def test_positions_are_dense_per_hospital_with_three_nodes_writing(
    postgres_url: str, clock: FakeClock
) -> None:
    """Three stores on one database (three nodes), batches racing on two hospitals, some
    operations failing after staging: each hospital's log is 1..n with no gap or repeat, and
    each node published exactly the events it committed, in order."""
    backend = PostgresBackend(postgres_url)
    async with open_store(backend) as a, open_store(backend) as b, open_store(backend) as c:
        nodes = [a, b, c]

        async def fails_after_staging(tx: Transaction) -> None:
            tx.stage(*staged_creation(clock, "h1"))
            raise RuntimeError("changed its mind")

        calls: list[Any] = []
        for round_ in range(20):
            for i, node in enumerate(nodes):
                hospital = ("h1", "h2")[(round_ + i) % 2]
                calls.append(service(node, clock).create(alert_input(hospital), f"dev-{i}"))
                if round_ % 5 == i:
                    calls.append(node.transact(fails_after_staging))
        results = await asyncio.gather(*calls, return_exceptions=True)

        failures = [r for r in results if isinstance(r, BaseException)]
        assert all(isinstance(f, RuntimeError) for f in failures)
        assert len(failures) == 4 * 3  # every failing operation, and nothing else
        for hospital in ("h1", "h2"):
            log = await a.events_after(hospital, 0, 10_000)
            assert [e.seq for e in log] == list(range(1, 31))  # 3 nodes x 20 rounds / 2
            assert {decode(e).actor_id for e in log} == {"dev-0", "dev-1", "dev-2"}
        for node in nodes:
            heard = published(node).events
            for hospital in ("h1", "h2"):
                mine = [e.seq for e in heard if e.hospital_id == hospital]
                assert mine == sorted(set(mine))
            for event in heard:  # what it published is what the log holds
                assert (await a.events_after(event.hospital_id, event.seq - 1, 1)) == [event]
        counted = sum(len(published(node).events) for node in nodes)
        assert counted == 60


def staged_creation(clock: FakeClock, hospital: str) -> tuple[StagedChange, Any]:
    change = lifecycle.create("al_ghost", alert_input(hospital), "ghost", clock())
    record = AlertRecord(change.alert, clock(), None, None)
    staged = StagedChange(record, change.event_type, "ghost", clock(), None)
    return staged, lambda seq: event_payload(seq, change, "ghost", clock())


async def test_commits_are_durable(pg_store: PostgresAlertStore) -> None:
    pool = pg_store._pool
    assert pool is not None
    async with pool.acquire() as conn:
        assert await conn.fetchval("SHOW synchronous_commit") == "on"


async def test_a_killed_backend_connection_is_replaced_without_restart(
    pg_store: PostgresAlertStore, postgres_url: str, clock: FakeClock
) -> None:
    alerts = service(pg_store, clock)
    first = await alerts.create(alert_input(), "device-7")
    assert await terminate_backends(postgres_url) >= 1  # every connection the store holds
    second = await alerts.create(alert_input(), "device-7")  # the very next call works
    assert (await alerts.escalate(first.id, "nurse-1", None)).version == 2
    assert [e.alert_id for e in await pg_store.events_after("h1", 0, 10)] == [
        first.id,
        second.id,
        first.id,
    ]
    assert await terminate_backends(postgres_url) >= 1
    assert await pg_store.healthy()


@pytest.mark.parametrize("landed", [False, True], ids=["before-commit", "after-commit"])
async def test_a_connection_lost_during_the_commit_is_resolved(
    pg_store: PostgresAlertStore,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
    landed: bool,
) -> None:
    """The answer to the commit call never comes: the store finds out whether the batch
    committed, and neither loses it nor commits it twice."""
    call = pg_store._call
    lost = 0

    async def lose_the_first(args: list[Any]) -> list[Any]:
        nonlocal lost
        if lost == 0:
            lost += 1
            if landed:
                await call(args)
            raise asyncpg.ConnectionDoesNotExistError("connection was closed")
        return await call(args)

    monkeypatch.setattr(pg_store, "_call", lose_the_first)
    alert = await service(pg_store, clock).create(alert_input(), "device-7")
    assert lost == 1
    log = await pg_store.events_after("h1", 0, 10)
    assert [(e.seq, e.alert_id) for e in log] == [(1, alert.id)]
    assert published(pg_store).events == log
    assert (await service(pg_store, clock).escalate(alert.id, "n", None)).version == 2


async def test_an_unreachable_database_is_service_unavailable_until_it_is_back(
    postgres_url: str, clock: FakeClock
) -> None:
    proxy = TcpProxy(postgres_url)
    await proxy.start()
    config = DomainConfig(postgres_url=proxy.url)
    services = await Services.open(config, ConnectionRegistry(), clock=clock, background=False)
    try:
        made = await services.alerts.create(alert_input(), "device-7")
        assert await services.health() == {"storage": "ok", "bus": "ok"}
        await proxy.cut()
        for call in (
            lambda: services.alerts.create(alert_input(), "device-7"),
            lambda: services.store.events_after("h1", 0, 10),
            lambda: services.alerts.get("al_not_cached"),
        ):
            with pytest.raises(RpcError) as exc:
                await asyncio.wait_for(call(), 4)  # at once, not after a long timeout
            assert exc.value.code is ErrorCode.SERVICE_UNAVAILABLE
            assert exc.value.data == {}  # nothing about the database reaches a client
        assert await services.health() == {"storage": "down", "bus": "degraded"}
        await proxy.restore()
        again = await services.alerts.create(alert_input(), "device-7")
        assert (await services.health())["storage"] == "ok"

        async def listening_again() -> bool:  # the bus reconnects by itself, after a back-off
            return await services.health() == {"storage": "ok", "bus": "ok"}

        await until(listening_again, "the LISTEN connection to come back")
        log = await services.store.events_after("h1", 0, 10)
        assert [e.alert_id for e in log] == [made.id, again.id]
        assert [e.seq for e in log] == [1, 2]  # the failed attempt left no hole
    finally:
        await services.close()
        await proxy.cut()
