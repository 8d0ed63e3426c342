"""The notification rules and the live inbox, on both stores: each rule writes exactly one
notification per recipient; every device of the user on every node hears it, the reads and
the unread count; a subscription resumes after `lastEventId`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import pytest

from rpc.cluster_memory import InMemoryClusterState, MemoryHub
from rpc.connections import ConnectionRegistry
from rpc.context import Principal
from rpc.stream import Tracked
from schemas.alerts import UpdateAlertInput
from schemas.notifications import NotificationEvent
from services.config import DomainConfig
from services.container import Services
from services.notifications import position_of
from services.store import format_event_id
from tests.polling import until
from tests.services.conftest import T0, FakeClock, alert_input


def staff(sub: str, role: str, hospitals: tuple[str, ...] = ("h1",)) -> Principal:
    return Principal(sub, role, frozenset(hospitals), T0 + 86_400, None)


async def settled(services: Services) -> None:
    await until(lambda: services.notifications.pending == 0, "notification work to finish", 5)


async def inbox(services: Services, sub: str) -> list[tuple[str, str | None]]:
    items, _cursor, _unread = await services.notifications.page(sub, False, None, 100)
    return [(n.kind, n.alert_id) for n in reversed(items)]


@pytest.fixture
async def pair(config: DomainConfig, clock: FakeClock) -> AsyncIterator[tuple[Services, Services]]:
    """Two nodes on one database and one cluster hub."""
    hub = MemoryHub()
    a = await Services.open(
        config, ConnectionRegistry(InMemoryClusterState("a", hub)), clock=clock, background=False
    )
    b = await Services.open(
        config, ConnectionRegistry(InMemoryClusterState("b", hub)), clock=clock, background=False
    )
    try:
        yield a, b
    finally:
        await b.close()
        await a.close()


async def seen(services: Services, *people: Principal) -> None:
    for person in people:
        services.heard_call(person)
    await settled(services)


async def test_assignment_notifies_the_assignee_once(services: Services) -> None:
    await seen(services, staff("cn-1", "charge_nurse"), staff("nurse-1", "nurse"))
    alert = await services.alerts.create(alert_input(), "device-7")
    await services.alerts.update(UpdateAlertInput(alert_id=alert.id, assigned_to="nurse-1"), "cn-1")
    await services.alerts.update(UpdateAlertInput(alert_id=alert.id, title="Bed 12"), "cn-1")
    await services.alerts.update(UpdateAlertInput(alert_id=alert.id, assigned_to="cn-1"), "cn-1")
    await settled(services)
    assert await inbox(services, "nurse-1") == [("alert.assigned", alert.id)]
    assert await inbox(services, "cn-1") == []  # assigning oneself tells nobody


async def test_escalation_notifies_the_assignee_and_the_charge_nurses_once(
    services: Services, clock: FakeClock
) -> None:
    await seen(
        services,
        staff("cn-1", "charge_nurse"),
        staff("cn-2", "charge_nurse", ("h1", "h2")),
        staff("cn-other", "charge_nurse", ("h2",)),
        staff("nurse-1", "nurse"),
        staff("nurse-2", "nurse"),
    )
    alert = await services.alerts.create(alert_input(priority="critical"), "device-7")
    await services.alerts.update(UpdateAlertInput(alert_id=alert.id, assigned_to="nurse-1"), "cn-1")
    clock.advance(services.config.targets["critical"])
    assert await services.alerts.escalate_if_due(alert.id) is not None
    await settled(services)
    escalated = ("alert.escalated", alert.id)
    assert await inbox(services, "nurse-1") == [("alert.assigned", alert.id), escalated]
    assert await inbox(services, "cn-1") == [escalated]
    assert await inbox(services, "cn-2") == [escalated]
    assert await inbox(services, "cn-other") == []
    assert await inbox(services, "nurse-2") == []
    # by hand: the escalating charge nurse is not told of their own act
    await services.alerts.escalate(alert.id, "cn-1", "needs a physician")
    await settled(services)
    assert await inbox(services, "cn-1") == [escalated]
    assert await inbox(services, "cn-2") == [escalated, escalated]


async def test_a_disabled_webhook_notifies_the_admins_once(services: Services) -> None:
    await seen(services, staff("adm-1", "admin"), staff("adm-2", "admin", ("h2",)))
    await seen(services, staff("nurse-1", "nurse"))
    written = await services.notifications.notify_webhook_disabled(
        "h1", "wh_1", "https://example.org/hook", disabled_at=T0
    )
    again = await services.notifications.notify_webhook_disabled("h1", "wh_1", disabled_at=T0)
    assert [n.recipient for n in written] == ["adm-1"]
    assert again == []
    assert await inbox(services, "adm-1") == [("webhook.disabled", None)]
    assert await inbox(services, "adm-2") == await inbox(services, "nurse-1") == []


async def test_a_broadcast_reaches_the_hospitals_staff(services: Services) -> None:
    await seen(
        services,
        staff("adm-1", "admin"),
        staff("nurse-1", "nurse"),
        staff("nurse-2", "nurse", ("h2",)),
        staff("device-1", "service"),
    )
    written = await services.notifications.broadcast("h1", "Maintenance", "At 02:00", "warning")
    assert sorted(n.recipient for n in written) == ["adm-1", "nurse-1"]
    [item], _, unread = await services.notifications.page("nurse-1", False, None, 10)
    assert (item.kind, item.title, item.severity, unread) == (
        "broadcast",
        "Maintenance",
        "warning",
        1,
    )


class Device:
    """One subscription of the user's inbox, read by hand."""

    def __init__(self, stream: AsyncGenerator[Tracked[NotificationEvent]]) -> None:
        self.stream = stream

    @classmethod
    async def open(cls, services: Services, sub: str, after: int | None = None) -> Device:
        return cls(await services.notifications.stream(sub, after))

    async def next(self) -> tuple[str, Any]:
        tracked = await anext(self.stream)
        event = tracked.data
        if event.type == "notification.new":
            return event.type, event.notification.title
        if event.type == "notification.read":
            return event.type, len(event.ids)
        return event.type, event.unread


async def test_every_device_on_every_node_hears_news_reads_and_counts(
    pair: tuple[Services, Services],
) -> None:
    a, b = pair
    await seen(a, staff("nurse-1", "nurse"))
    phone, tablet = await Device.open(a, "nurse-1"), await Device.open(b, "nurse-1")
    assert await phone.next() == ("notification.count", 0)
    assert await tablet.next() == ("notification.count", 0)
    for title, count in (("one", 1), ("two", 2)):
        await a.notifications.notify(["nurse-1"], "broadcast", title, None, "h1", None, "info")
        for device in (phone, tablet):
            assert [await device.next() for _ in range(2)] == [
                ("notification.new", title),
                ("notification.count", count),
            ]
    items, _, _ = await a.notifications.page("nurse-1", False, None, 10)
    changed, unread = await b.notifications.mark_read("nurse-1", [int(items[0].id)])
    assert (len(changed), unread) == (1, 1)
    for device in (phone, tablet):
        assert [await device.next() for _ in range(2)] == [
            ("notification.read", 1),
            ("notification.count", 1),
        ]
    for device in (phone, tablet):
        await device.stream.aclose()


async def test_a_subscription_resumes_after_the_last_id_it_saw(services: Services) -> None:
    first = await services.notifications.notify(["nurse-1"], "broadcast", "a", None, "h1", None)
    missed = [
        await services.notifications.notify(["nurse-1"], "broadcast", t, None, "h1", None)
        for t in ("b", "c")
    ]
    assert len(missed) == 2
    device = await Device.open(services, "nurse-1", first[0].id)
    got = [await device.next() for _ in range(3)]
    assert got == [("notification.new", "b"), ("notification.new", "c"), ("notification.count", 3)]
    await device.stream.aclose()
    # every event has an id of its own, in order; a count's id resumes after what came before
    device = await Device.open(services, "nurse-1", 0)
    ids = [(await anext(device.stream)).id for _ in range(4)]
    await device.stream.aclose()
    assert len(set(ids)) == 4
    assert ids == sorted(ids)
    assert position_of(ids[-1]) == missed[-1][0].id
    last = await services.notifications.notify(["nurse-1"], "broadcast", "d", None, "h1", None)
    resumed = await services.notifications.stream("nurse-1", position_of(ids[-1]))
    assert (await anext(resumed)).id == format_event_id(last[0].id)
    await resumed.aclose()
    assert position_of("12.xyz") is None


async def test_two_nodes_escalating_at_once_notify_once(
    pair: tuple[Services, Services], clock: FakeClock
) -> None:
    a, b = pair
    await seen(a, staff("cn-1", "charge_nurse"))
    alert = await a.alerts.create(alert_input(priority="critical"), "device-7")
    clock.advance(a.config.targets["critical"])
    done = await asyncio.gather(
        a.alerts.escalate_if_due(alert.id), b.alerts.escalate_if_due(alert.id)
    )
    assert len([d for d in done if d is not None]) == 1
    await settled(a)
    await settled(b)
    assert await inbox(a, "cn-1") == [("alert.escalated", alert.id)]


async def test_a_notification_written_before_the_stream_is_first_read_is_sent(
    services: Services,
) -> None:
    """The subscription starts when `stream` returns (the subscriber is then told it has
    started); what is written after that, even before the stream is first read, is new."""
    device = await Device.open(services, "nurse-1")
    await services.notifications.notify(["nurse-1"], "broadcast", "early", None, "h1", None)
    assert await device.next() == ("notification.new", "early")
    await device.stream.aclose()
