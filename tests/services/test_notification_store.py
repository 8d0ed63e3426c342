"""The notifications seam's contract, on both stores: ids in write order, a dedupe key writing
once per recipient, pages and resumes, unread counts that stay right when two devices mark the
same notifications read at once, and the staff directory."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from services.container import make_notification_store
from services.notification_store import NewNotification, NotificationStore
from tests.services.conftest import T0
from tests.services.stores import Backend, open_store


@pytest.fixture
async def inbox(backend: Backend) -> AsyncIterator[NotificationStore]:
    async with open_store(backend) as store:
        yield make_notification_store(store)


def note(recipient: str, title: str = "t", dedupe: str | None = None) -> NewNotification:
    return NewNotification(recipient, "broadcast", title, "m", "h1", None, "info", T0, dedupe)


async def test_ids_increase_and_a_dedupe_key_writes_once(inbox: NotificationStore) -> None:
    first = await inbox.add([note("ana", "1"), note("ben", "1"), note("ana", "2")])
    assert [(n.recipient, n.title) for n in first] == [("ana", "1"), ("ben", "1"), ("ana", "2")]
    ids = [n.id for n in first]
    assert ids == sorted(ids)
    assert len(set(ids)) == 3
    once = await inbox.add([note("ana", "x", "rule:1"), note("ben", "x", "rule:1")])
    again = await inbox.add([note("ana", "x", "rule:1"), note("cy", "x", "rule:1")])
    assert [n.recipient for n in once] == ["ana", "ben"]
    assert [n.recipient for n in again] == ["cy"]  # ana had it already
    assert await inbox.unread("ana") == 3
    assert await inbox.newest_id("ana") == once[0].id
    assert await inbox.newest_id("nobody") == 0
    assert await inbox.holding("rule:1", ["ana", "cy", "dan"]) == {"ana", "cy"}
    assert await inbox.holding("rule:2", ["ana"]) == set()
    assert await inbox.holding("rule:1", []) == set()


async def test_pages_newest_first_and_resume_after_an_id(inbox: NotificationStore) -> None:
    written = await inbox.add([note("ana", str(n)) for n in range(5)] + [note("ben")])
    ana = [n for n in written if n.recipient == "ana"]
    page = await inbox.page("ana", False, None, 2)
    assert [n.title for n in page] == ["4", "3"]
    rest = await inbox.page("ana", False, page[-1].id, 10)
    assert [n.title for n in rest] == ["2", "1", "0"]
    after = await inbox.after("ana", ana[1].id, 10)
    assert [n.title for n in after] == ["2", "3", "4"]
    await inbox.mark_read("ana", [ana[4].id, ana[0].id], T0 + 5)
    unread = await inbox.page("ana", True, None, 10)
    assert [n.title for n in unread] == ["3", "2", "1"]
    [read] = await inbox.page("ana", False, None, 1)
    assert read.read_ts == T0 + 5


async def test_two_devices_marking_at_once_count_each_read_once(
    backend: Backend, inbox: NotificationStore
) -> None:
    written = await inbox.add([note("ana", str(n)) for n in range(40)] + [note("ben")])
    ana = [n.id for n in written if n.recipient == "ana"]
    ben = [n.id for n in written if n.recipient == "ben"]
    async with open_store(backend) as other_store:  # a second connection (another node)
        other = make_notification_store(other_store)
        phone, tablet = await asyncio.gather(
            inbox.mark_read("ana", ana[:30] + ben, T0 + 1),
            other.mark_read("ana", ana[10:], T0 + 1),
        )
    assert not set(phone) & set(tablet)  # no read counted twice
    assert sorted(phone + tablet) == ana  # and none of ben's
    assert await inbox.unread("ana") == 0
    assert await inbox.unread("ben") == 1
    assert await inbox.mark_read("ana", None, T0 + 2) == []


async def test_mark_all_read_returns_what_it_changed(inbox: NotificationStore) -> None:
    written = await inbox.add([note("ana"), note("ana"), note("ben")])
    await inbox.mark_read("ana", [written[0].id], T0)
    assert await inbox.mark_read("ana", None, T0) == [written[1].id]
    assert (await inbox.unread("ana"), await inbox.unread("ben")) == (0, 1)


async def test_the_directory_lists_staff_by_hospital_and_role(inbox: NotificationStore) -> None:
    await inbox.remember("cn-1", "charge_nurse", "Cara", ["h1", "h2"], T0)
    await inbox.remember("nurse-1", "nurse", None, ["h1"], T0)
    await inbox.remember("adm-1", "admin", None, ["h2"], T0)
    assert await inbox.staff_of("h1", None) == ["cn-1", "nurse-1"]
    assert await inbox.staff_of("h1", frozenset({"charge_nurse"})) == ["cn-1"]
    assert await inbox.staff_of("h2", frozenset({"admin"})) == ["adm-1"]
    # a new token with fewer hospitals replaces the rows
    await inbox.remember("cn-1", "charge_nurse", "Cara", ["h2"], T0 + 1)
    assert await inbox.staff_of("h1", frozenset({"charge_nurse"})) == []
    assert await inbox.staff_of("h2", None) == ["adm-1", "cn-1"]
