"""scripts/migrate_sqlite_to_postgres.py on a real SQLite file and a real PostgreSQL schema: ids
kept, subscribers resume across the move with the id they hold, new events continue above the
copied ones, and a target that is not empty is refused."""

from __future__ import annotations

import asyncio
import sqlite3
import sys
from pathlib import Path

import aiohttp
import pytest

from services.alerts import AlertService
from services.config import DEFAULT_TARGETS
from services.revocations import SqliteRevocations
from services.store_sqlite import SqliteAlertStore
from tests.integration.cluster import (
    Device,
    Watcher,
    kill,
    logged,
    problems,
    received,
    start_node,
)
from tests.integration.server import ROOT
from tests.postgres import fetch
from tests.services.conftest import alert_input
from tests.services.stores import sqlite_query

SCRIPT = ROOT / "scripts" / "migrate_sqlite_to_postgres.py"


async def run_script(source: Path, target: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(SCRIPT),
        "--from",
        str(source),
        "--to",
        target,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def embedded_database(path: Path) -> None:
    """Alerts of two hospitals written in turn, so each hospital's positions have gaps (SQLite
    numbers all events with one sequence), some acknowledged and resolved."""
    store = SqliteAlertStore(str(path))
    await store.open()
    try:
        alerts = AlertService(store, dict(DEFAULT_TARGETS))
        for n in range(6):
            for hospital in ("h1", "h2"):
                data = alert_input(hospital, title=f"call {n}")
                if n == 0:  # a device's retry key: it must still be known after the move
                    data = data.model_copy(update={"idempotency_key": f"dev-1-{hospital}-0"})
                alert = await alerts.create(data, "dev-1")
                if n % 2 == 0:
                    await alerts.acknowledge(alert.id, "nurse-1", None)
                if n == 4:
                    await alerts.resolve(alert.id, "nurse-1", "done")
        revocations = SqliteRevocations(store)
        await revocations.revoke_subject("nurse-9", 1000.0, at=1001.0, by="admin-1")
        await revocations.revoke_token("stolen-1", at=1002.0, by="admin-1")
    finally:
        await store.close()


def sqlite_stream(path: Path, hospital: str) -> list[tuple[str, str]]:
    rows = sqlite_query(
        str(path), "SELECT seq, alert_id FROM events WHERE hospital_id = ? ORDER BY seq", hospital
    )
    return [(f"{seq:016d}", alert_id) for seq, alert_id in rows]


@pytest.mark.slow
async def test_clients_resume_across_the_move_and_new_events_continue(
    tmp_path: Path, postgres_url: str
) -> None:
    source = tmp_path / "alertwire.db"
    await embedded_database(source)
    h1, h2 = sqlite_stream(source, "h1"), sqlite_stream(source, "h2")
    assert len(h1) == len(h2) == 6 + 3 + 1
    assert [int(i) for i, _ in h1] != list(range(1, len(h1) + 1)), "positions should have gaps"

    code, out, err = await run_script(source, postgres_url)
    assert code == 0, err
    assert "copied 12 alerts, 20 events, 0 prune marks and 2 idempotency keys" in out
    keys = "SELECT hospital_id, idempotency_key, alert_id FROM idempotency_keys ORDER BY 1"
    assert await fetch(postgres_url, keys) == sqlite_query(str(source), keys)
    assert "copied 2 token revocations" in out
    revoked = "SELECT kind, value, issued_before, revoked_by FROM token_revocations ORDER BY 1"
    assert await fetch(postgres_url, revoked) == sqlite_query(str(source), revoked)
    assert await logged(postgres_url, "h1") == h1
    assert await logged(postgres_url, "h2") == h2
    counters = dict(await fetch(postgres_url, "SELECT hospital_id, last_seq FROM event_counters"))
    assert counters == {"h1": int(h1[-1][0]), "h2": int(h2[-1][0])}
    copied = await fetch(postgres_url, "SELECT seq, payload FROM events ORDER BY seq")
    assert copied == sqlite_query(str(source), "SELECT seq, payload FROM events ORDER BY seq")

    resume_from = h1[3][0]  # a client of the embedded server had received up to here
    node = await start_node(tmp_path, postgres_url, 0)
    try:
        async with aiohttp.ClientSession() as http:
            watchers = [
                Watcher(http, dialect, f"nurse-{dialect}") for dialect in ("jsonrpc", "sse")
            ]
            for watcher in watchers:
                await watcher.follow(node, resume_from)
            device = await Device.connect(http, node)
            created = [await device.create(f"after the move {n}") for n in range(3)]
            await device.close()
            stream = await logged(postgres_url, "h1")
            new = stream[len(h1) :]
            assert [alert for _, alert in new] == created
            first_new = int(h1[-1][0]) + 1
            assert [int(i) for i, _ in new] == list(range(first_new, first_new + 3))
            expected = [e for e in stream if e[0] > resume_from]
            for watcher in watchers:
                await received(watcher, len(expected))
                assert problems(watcher, expected) == ""
                await watcher.close()
    finally:
        await kill(node)


@pytest.mark.slow
async def test_a_target_that_is_not_empty_is_refused_and_left_as_it_was(
    tmp_path: Path, postgres_url: str
) -> None:
    source = tmp_path / "alertwire.db"
    await embedded_database(source)
    code, _, err = await run_script(source, postgres_url)
    assert code == 0, err
    before = await fetch(postgres_url, "SELECT COUNT(*), MAX(seq) FROM events")

    code, out, err = await run_script(source, postgres_url)
    assert code == 1
    assert "is not empty" in err
    assert "copied" not in out
    assert await fetch(postgres_url, "SELECT COUNT(*), MAX(seq) FROM events") == before


async def test_rows_it_cannot_copy_are_refused_before_anything_is_written(
    tmp_path: Path,
) -> None:
    source = tmp_path / "alertwire.db"
    await embedded_database(source)
    with sqlite3.connect(source) as db:
        db.execute("CREATE TABLE extra (x TEXT)")
        db.execute("INSERT INTO extra VALUES ('row')")
    # A target nothing listens on: the refusal comes before any connection is tried.
    code, _, err = await run_script(source, "postgresql://nobody@127.0.0.1:1/none")
    assert code == 1
    assert "'extra' holds rows" in err


async def test_a_missing_source_is_refused(tmp_path: Path) -> None:
    code, _, err = await run_script(tmp_path / "absent.db", "postgresql://nobody@127.0.0.1:1/x")
    assert code == 1
    assert "no SQLite database at" in err
