"""Moving from SQLite to PostgreSQL keeps each user's inbox (with its ids, which subscribers
resume by) and the staff directory; new notifications continue after the copied ids."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.notification_store import NewNotification, SqliteNotificationStore
from services.notification_store_postgres import PostgresNotificationStore
from services.store_postgres import PostgresAlertStore
from services.store_sqlite import SqliteAlertStore
from tests.postgres import fetch
from tests.scripts.test_migrate_sqlite_to_postgres import run_script
from tests.services.conftest import T0


def note(recipient: str, title: str) -> NewNotification:
    return NewNotification(recipient, "broadcast", title, None, "h1", None, "info", T0)


@pytest.mark.slow
async def test_inboxes_and_the_directory_move_with_their_ids(
    tmp_path: Path, postgres_url: str
) -> None:
    source = tmp_path / "alertwire.db"
    store = SqliteAlertStore(str(source))
    await store.open()
    try:
        inbox = SqliteNotificationStore(store)
        written = await inbox.add([note("ana", "1"), note("ben", "1"), note("ana", "2")])
        await inbox.mark_read("ana", [written[0].id], T0 + 1)
        await inbox.remember("cn-1", "charge_nurse", "Cara", ["h1", "h2"], T0)
    finally:
        await store.close()

    code, out, err = await run_script(source, postgres_url)
    assert code == 0, err
    assert "and 3 notifications" in out
    target = PostgresAlertStore(postgres_url)
    await target.open()
    try:
        moved = PostgresNotificationStore(target)
        assert [n.title for n in await moved.page("ana", False, None, 10)] == ["2", "1"]
        assert await moved.unread("ana") == 1
        assert await moved.staff_of("h2", frozenset({"charge_nurse"})) == ["cn-1"]
        [after] = await moved.add([note("ana", "3")])
        assert after.id > written[-1].id
    finally:
        await target.close()
    assert await fetch(postgres_url, "SELECT COUNT(*) FROM staff_directory") == [(2,)]
