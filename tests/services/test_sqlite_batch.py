"""services/sqlite_batch.py: the one call a write batch makes on the database thread, driven
directly on a plain sqlite3 connection to a migrated file, and the helper that runs it on an
aiosqlite connection's own thread."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import aiosqlite
import pytest

from rpc.errors import ErrorCode, RpcError
from services import lifecycle
from services.alerts import event_payload
from services.sqlite_batch import BatchWrite, Committed, Renumber, run_on_thread, write_batch
from services.store import AlertRecord, StagedChange, StoredEvent
from tests.services.conftest import T0, alert_input
from tests.services.stores import open_sqlite
from tests.services.stores import sqlite_query as query


@pytest.fixture
async def path(tmp_path: Path) -> str:
    path = str(tmp_path / "batch.db")
    async with open_sqlite(path):  # migrated, then closed
        pass
    return path


@contextlib.contextmanager
def connect(path: str) -> Iterator[sqlite3.Connection]:
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
        yield conn


def creation(alert_id: str, seq: int, version: int = 1) -> tuple[StagedChange, StoredEvent]:
    """A staged change whose alert is at `version`, numbered `seq`."""
    change = lifecycle.create(alert_id, alert_input(), "device-7", T0)
    alert = change.alert.model_copy(update={"version": version})
    staged = StagedChange(
        AlertRecord(alert, T0, None, None), change.event_type, "device-7", T0, None
    )
    event = StoredEvent(
        seq, alert.hospital_id, alert.id, event_payload(seq, change, "device-7", T0)
    )
    return staged, event


def batch_of(first_seq: int, *alert_ids: str) -> BatchWrite:
    write = BatchWrite(first_seq)
    for offset, alert_id in enumerate(alert_ids):
        write.add(*creation(alert_id, first_seq + offset))
    return write


async def test_a_batch_commits_its_rows_and_says_what_came_before(path: str) -> None:
    with connect(path) as conn:
        assert write_batch(conn, batch_of(1, "al_a", "al_b")) == Committed(0, [])
        assert not conn.in_transaction
        assert write_batch(conn, batch_of(3, "al_c")) == Committed(2, [])
    assert query(path, "SELECT seq, alert_id FROM events ORDER BY seq") == [
        (1, "al_a"),
        (2, "al_b"),
        (3, "al_c"),
    ]


async def test_positions_another_writer_used_are_not_written_over(path: str) -> None:
    with connect(path) as conn:
        write_batch(conn, batch_of(1, "al_a", "al_b"))  # another writer's, say
        result = write_batch(conn, batch_of(2, "al_c"))
        assert result == Renumber(3)
        assert not conn.in_transaction
    assert query(path, "SELECT COUNT(*) FROM alerts WHERE id = 'al_c'") == [(0,)]
    assert query(path, "SELECT MAX(seq) FROM events") == [(2,)]


async def test_a_stale_version_fails_the_whole_batch(path: str) -> None:
    with connect(path) as conn:
        write_batch(conn, batch_of(1, "al_a"))
        stale = batch_of(2, "al_new")
        stale.add(*creation("al_a", 3, version=3))  # its change started from 2; 1 is stored
        with pytest.raises(RpcError) as exc:
            write_batch(conn, stale)
        assert exc.value.code is ErrorCode.CONFLICT
        assert not conn.in_transaction
    assert query(path, "SELECT id, version FROM alerts") == [("al_a", 1)]
    assert query(path, "SELECT seq FROM events") == [(1,)]


async def test_a_failing_step_leaves_nothing_and_fails_alone(path: str) -> None:
    def delete_then_fail(conn: sqlite3.Connection) -> None:
        conn.execute("DELETE FROM events")
        raise OSError("disk trouble")

    def count(conn: sqlite3.Connection) -> int:
        return int(conn.execute("SELECT COUNT(*) FROM events").fetchone()[0])

    with connect(path) as conn:
        write_batch(conn, batch_of(1, "al_a"))
        write = batch_of(2, "al_b")
        write.steps += [delete_then_fail, count]
        result = write_batch(conn, write)
    assert isinstance(result, Committed)
    [(value, error), (counted, no_error)] = result.outcomes
    assert value is None
    assert isinstance(error, OSError)
    assert (counted, no_error) == (1, None)  # steps run before the batch's own rows
    assert query(path, "SELECT seq FROM events ORDER BY seq") == [(1,), (2,)]


async def test_a_failing_insert_rolls_everything_back(path: str) -> None:
    write = batch_of(1, "al_a")
    write.event_rows.append(write.event_rows[0])  # the same position twice
    with connect(path) as conn:
        with pytest.raises(sqlite3.IntegrityError):
            write_batch(conn, write)
        assert not conn.in_transaction
    assert query(path, "SELECT COUNT(*) FROM alerts") == [(0,)]


async def test_run_on_thread_uses_the_connections_own_thread_and_connection(path: str) -> None:
    async with aiosqlite.connect(path, isolation_level=None) as db:
        await db.execute("BEGIN")
        await db.execute("CREATE TEMP TABLE mine (x)")

        def look(conn: sqlite3.Connection) -> tuple[int, bool, int]:
            rows = conn.execute("SELECT COUNT(*) FROM mine").fetchone()[0]
            return threading.get_ident(), conn.in_transaction, rows

        ident, in_transaction, rows = await run_on_thread(db, look)
        assert ident not in (threading.get_ident(), None)
        assert (in_transaction, rows) == (True, 0)  # the same connection, mid-transaction
        assert ident == db._thread.ident

        def fail(conn: sqlite3.Connection) -> None:
            raise ValueError("from the thread")

        with pytest.raises(ValueError, match="from the thread"):
            await run_on_thread(db, fail)
        await db.execute("ROLLBACK")
