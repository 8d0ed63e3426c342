"""The data directory is created 0700 and the database files are 0600, whatever the umask
(CONTRACT 5a), -wal and -shm included once a write has made them."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
from pathlib import Path

import pytest

from rpc.connections import ConnectionRegistry
from services.config import DomainConfig
from services.container import Services
from services.private_files import make_private_dir, make_private_file
from tests.services.conftest import alert_input
from tests.services.stores import SqliteBackend, open_store

UMASKS = [0o022, 0o000, 0o077, 0o277]


def mode(path: Path | str) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def database_files(db: Path) -> list[Path]:
    return [db, Path(f"{db}-wal"), Path(f"{db}-shm")]


@pytest.mark.parametrize("umask", UMASKS, indirect=True, ids=oct)
async def test_a_new_data_directory_and_database_are_private(tmp_path: Path, umask: int) -> None:
    db = tmp_path / "srv" / "data" / "alertwire.db"
    services = await Services.open(
        DomainConfig(database_path=str(db)), ConnectionRegistry(), background=False
    )
    try:
        await services.alerts.create(alert_input(), "device-7")
        for path in database_files(db):  # the WAL and its index exist until the last close
            assert path.exists(), path
            assert mode(path) == 0o600, (path.name, oct(mode(path)))
        assert mode(tmp_path / "srv") == 0o700
        assert mode(tmp_path / "srv" / "data") == 0o700
    finally:
        await services.close()


async def test_files_an_earlier_release_left_readable_are_tightened(
    tmp_path: Path, umask: int
) -> None:
    """A database made with the umask's mode (0644), its -wal and -shm still there because
    another connection holds them: all three are 0600 once the store opens."""
    db = tmp_path / "alertwire.db"
    with contextlib.closing(sqlite3.connect(db)) as earlier:
        earlier.execute("PRAGMA journal_mode=WAL")
        earlier.execute("CREATE TABLE leftover (x)")
        earlier.execute("INSERT INTO leftover VALUES (1)")
        earlier.commit()
        assert {mode(p) for p in database_files(db)} == {0o644}
        async with open_store(SqliteBackend(str(db))):
            assert [oct(mode(p)) for p in database_files(db)] == [oct(0o600)] * 3


async def test_a_directory_the_operator_made_keeps_its_mode(tmp_path: Path, umask: int) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o750)  # noqa: S103 - shared with a group on purpose
    async with open_store(SqliteBackend(str(shared / "alertwire.db"))):
        assert mode(shared) == 0o750
        assert mode(shared / "alertwire.db") == 0o600


@pytest.mark.parametrize("umask", [0o777], indirect=True, ids=oct)
def test_helpers_set_the_modes_even_under_a_umask_that_takes_everything(
    tmp_path: Path, umask: int
) -> None:
    deep = tmp_path / "a" / "b" / "c"
    make_private_dir(deep)
    assert [mode(p) for p in (tmp_path / "a", tmp_path / "a" / "b", deep)] == [0o700] * 3
    make_private_file(deep / "f")
    assert mode(deep / "f") == 0o600
    (deep / "f").write_text("kept")
    os.chmod(deep / "f", 0o666)  # noqa: S103 - the loose mode to be tightened
    make_private_file(deep / "f")  # an existing file is tightened, its content kept
    assert mode(deep / "f") == 0o600
    assert (deep / "f").read_text() == "kept"
    make_private_dir(deep)  # an existing directory: nothing to do
    with pytest.raises(NotADirectoryError):
        make_private_dir(deep / "f")
