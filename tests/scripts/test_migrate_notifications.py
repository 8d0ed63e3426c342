"""Moving from SQLite to PostgreSQL keeps each user's inbox (with its ids, which subscribers
resume by) and the staff directory; new notifications continue after the copied ids."""

from __future__ import annotations

from pathlib import Path

import pytest

from schemas.alerts import UpdateAlertInput
from services.config import DomainConfig
from services.notification_store import NewNotification, SqliteNotificationStore
from services.notification_store_postgres import PostgresNotificationStore
from services.store_postgres import PostgresAlertStore
from services.store_sqlite import SqliteAlertStore
from tests.postgres import fetch
from tests.scripts.test_migrate_sqlite_to_postgres import run_script
from tests.services.conftest import T0, FakeClock, alert_input
from tests.services.test_notification_sweep import open_node, without_fast_path
from tests.services.test_notifications import inbox, seen, staff


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


@pytest.mark.slow
async def test_the_notification_cursor_moves_per_hospital(
    tmp_path: Path, postgres_url: str
) -> None:
    """What the sweep had handled stays handled, and what it had not is swept on PostgreSQL,
    in a hospital whose last position is below SQLite's cursor too."""
    clock = FakeClock()
    people = [staff("cn-1", "charge_nurse", ("h1", "h2")), staff("n-1", "nurse", ("h1", "h2"))]
    people.append(staff("n-2", "nurse", ("h1", "h2")))
    source = tmp_path / "alertwire.db"
    node = await open_node(DomainConfig(database_path=str(source)), clock)
    try:
        await seen(node, *people)
        without_fast_path(node)
        first = await node.alerts.create(alert_input("h1"), "device-7")  # h1: 1
        await node.alerts.update(UpdateAlertInput(alert_id=first.id, assigned_to="n-1"), "cn-1")
        second = await node.alerts.create(alert_input("h2"), "device-7")  # h2: 3
        await node.alerts.update(UpdateAlertInput(alert_id=second.id, assigned_to="n-1"), "cn-1")
        assert await node.notification_sweep.catch_up() == 2  # the cursor at 4
        await node.alerts.update(UpdateAlertInput(alert_id=first.id, assigned_to="n-2"), "cn-1")
    finally:
        await node.close()  # h1's last change (5) not swept

    code, _out, err = await run_script(source, postgres_url)
    assert code == 0, err
    assert sorted(
        await fetch(postgres_url, "SELECT hospital_id, seq FROM notification_cursors")
    ) == [
        ("h1", 4),
        ("h2", 4),
    ]
    moved = await open_node(DomainConfig(postgres_url=postgres_url), clock)
    try:
        without_fast_path(moved)
        assert await moved.notification_sweep.catch_up() == 1
        await moved.alerts.update(UpdateAlertInput(alert_id=second.id, assigned_to="n-2"), "cn-1")
        assert await moved.notification_sweep.catch_up() == 1  # h2: 5, above h2's last (4)
        assert await inbox(moved, "n-1") == [
            ("alert.assigned", first.id),
            ("alert.assigned", second.id),
        ]
        assert await inbox(moved, "n-2") == [
            ("alert.assigned", first.id),
            ("alert.assigned", second.id),
        ]
    finally:
        await moved.close()
