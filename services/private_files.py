"""Directories and files only the server's user may read: 0700 and 0600, whatever the umask
(CONTRACT 5a). The database holds patient data, and the development secret signs tokens.

What is tightened, and what is left alone:
- a directory this creates (the data directory, the database's directory and any missing
  parents) is 0700; the umask applies to mkdir's mode, so each is chmod-ed after it is made;
- an existing directory keeps its mode, since an operator who points ALERTWIRE_DATA_DIR or
  DATABASE_URL at a directory of their own (shared with a backup group, say) decides its
  mode; the one exception is the default `data` directory, which is the server's own and which
  releases before this one created with the umask's mode (server.config tightens it);
- the database and its companions (-wal, -shm, -journal) are always 0600: they are ours
  wherever they live. SQLite gives the -wal and -shm it creates the main file's mode, so
  making the main file 0600 before SQLite first opens it covers them too.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600
SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")


def make_private_dir(path: Path) -> None:
    """Create `path` and its missing parents, each 0700. An existing directory is left as is."""
    missing: list[Path] = []
    for candidate in (path, *path.parents):
        if candidate.exists():
            break
        missing.append(candidate)
    for directory in reversed(missing):
        try:
            os.mkdir(directory, DIR_MODE)
        except FileExistsError:  # made by someone else meanwhile: theirs, left as it is
            continue
        os.chmod(directory, DIR_MODE)
    if not path.is_dir():
        raise NotADirectoryError(f"{path} is not a directory")


def tighten_dir(path: Path) -> None:
    """Make an existing directory of the server's own 0700 (see the module's docstring)."""
    if path.is_dir():
        os.chmod(path, DIR_MODE)


def make_private_file(path: Path) -> None:
    """Create `path` empty if it is missing; either way leave it 0600."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)


def prepare_sqlite_files(database: Path) -> None:
    """Before SQLite opens `database`: its directory exists (0700 when made here), the file
    exists and is 0600, and any companion files an earlier run left are 0600 too."""
    make_private_dir(database.parent)
    make_private_file(database)
    for suffix in SQLITE_COMPANIONS:
        with contextlib.suppress(FileNotFoundError):
            os.chmod(f"{database}{suffix}", FILE_MODE)
