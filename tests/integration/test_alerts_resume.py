"""Resuming the alert stream over real sockets: across a server restart, past retention, per
alert, in the tRPC dialect and over SSE, and from a listAlerts snapshot."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from services.store import format_event_id
from tests.integration.harness import RpcClient, running_server, token
from tests.integration.test_alerts_wire import alert_input, enc, trpc, trpc_reply
from tests.rpc.wire import read_events


async def raise_alerts(device: RpcClient, count: int, **changes: Any) -> list[dict[str, Any]]:
    return [
        await device.call("healthcare.createAlert", alert_input(title=f"Alert {n}", **changes))
        for n in range(count)
    ]


async def test_a_restart_between_the_miss_and_the_resume_loses_nothing(tmp_path: Path) -> None:
    async with running_server(tmp_path) as running, aiohttp.ClientSession() as http:
        device = await RpcClient.connect(http, running, token("device-1", "service", ["h1"]))
        viewer = await RpcClient.connect(http, running, token("nurse-1", "nurse", ["h1"]))
        sid = await viewer.subscribe("healthcare.subscribeToAlerts", {"hospitalId": "h1"})
        await device.call("healthcare.createAlert", alert_input())
        last = (await viewer.next_event(sid))["id"]
        await viewer.close()
        before_restart = await raise_alerts(device, 30)
        await device.close()
    # the same database, a new process state: the ring buffer is empty, the log is not
    async with running_server(tmp_path) as running, aiohttp.ClientSession() as http:
        device = await RpcClient.connect(http, running, token("device-1", "service", ["h1"]))
        after_restart = await raise_alerts(device, 5)
        viewer = await RpcClient.connect(http, running, token("nurse-1", "nurse", ["h1"]))
        sid = await viewer.subscribe(
            "healthcare.subscribeToAlerts", {"hospitalId": "h1", "lastEventId": last}
        )
        made = before_restart + after_restart
        got = [await viewer.next_event(sid) for _ in made]
        assert [e["data"]["alertId"] for e in got] == [a["id"] for a in made]
        ids = [e["id"] for e in got]
        assert ids == sorted(ids)
        assert len(set(ids)) == len(ids)
        assert ids[0] > last  # ids keep increasing across the restart
        live = await device.call("healthcare.createAlert", alert_input(title="live"))
        assert (await viewer.next_event(sid))["data"]["alertId"] == live["id"]
        await viewer.close()
        await device.close()


async def test_a_position_older_than_retention_gets_stream_reset(tmp_path: Path) -> None:
    async with running_server(tmp_path) as running, aiohttp.ClientSession() as http:
        device = await RpcClient.connect(http, running, token("device-1", "service", ["h1"]))
        nurse = await RpcClient.connect(http, running, token("nurse-1", "nurse", ["h1"]))
        old = await raise_alerts(device, 60)
        first_page = await nurse.call("healthcare.getAlertEvents", {"hospitalId": "h1"})
        oldest_id = first_page["events"][0]["id"]
        for alert in old:
            await nurse.call("healthcare.resolveAlert", {"alertId": alert["id"]})
        still_open = await device.call("healthcare.createAlert", alert_input(title="open"))
        services = running.services
        marks = await services.store.prune(time.time() + 1)  # everything is past retention
        services.subscriptions.pruned(marks)
        # 121 events: all but the newest 100 of the hospital are gone
        assert marks["h1"] == int(oldest_id) + 20

        sid = await nurse.subscribe(
            "healthcare.subscribeToAlerts", {"hospitalId": "h1", "lastEventId": oldest_id}
        )
        reset = await nurse.next_event(sid)
        assert reset["data"]["type"] == "stream.reset"
        assert "retained" in reset["data"]["reason"]
        assert reset["id"] == reset["data"]["id"]
        assert int(reset["id"]) > marks["h1"]  # the newest id: the stream goes on after it
        live = await nurse.call("healthcare.escalateAlert", {"alertId": still_open["id"]})
        assert live["escalationLevel"] == 1
        after = await nurse.next_event(sid)
        assert after["data"]["type"] == "alert.escalated"
        # the polling fallback says the same
        page = await nurse.call(
            "healthcare.getAlertEvents", {"hospitalId": "h1", "lastEventId": oldest_id}
        )
        assert [e["type"] for e in page["events"]] == ["stream.reset"]
        await nurse.close()
        await device.close()


async def test_an_alert_specific_resume_gets_only_that_alerts_missed_events(
    tmp_path: Path,
) -> None:
    async with running_server(tmp_path) as running, aiohttp.ClientSession() as http:
        device = await RpcClient.connect(http, running, token("device-1", "service", ["h1"]))
        nurse = await RpcClient.connect(http, running, token("nurse-1", "nurse", ["h1"]))
        mine, other = await raise_alerts(device, 2)
        sid = await nurse.subscribe(
            "healthcare.subscribeToAlerts", {"hospitalId": "h1", "alertId": mine["id"]}
        )
        await nurse.call("healthcare.acknowledgeAlert", {"alertId": mine["id"]})
        last = (await nurse.next_event(sid))["id"]
        assert await nurse.call("subscription.stop", {"subscription": sid}) is True
        # 150 changes of the other alert push this one's events out of the ring buffer
        for n in range(150):
            await device.call("healthcare.updateAlert", {"alertId": other["id"], "title": f"t{n}"})
        await nurse.call("healthcare.escalateAlert", {"alertId": mine["id"]})
        await nurse.call("healthcare.resolveAlert", {"alertId": mine["id"]})
        sid = await nurse.subscribe(
            "healthcare.subscribeToAlerts",
            {"hospitalId": "h1", "alertId": mine["id"], "lastEventId": last},
        )
        got = [await nurse.next_event(sid) for _ in range(2)]
        assert [e["data"]["type"] for e in got] == ["alert.escalated", "alert.resolved"]
        # the stop reply comes after anything queued before it: nothing else was sent
        assert await nurse.call("subscription.stop", {"subscription": sid}) is True
        assert nurse.pending_events(sid) == 0
        await nurse.close()
        await device.close()


async def test_trpc_resume_with_last_event_id_in_params(tmp_path: Path) -> None:
    async with running_server(tmp_path) as running, aiohttp.ClientSession() as http:
        device = await RpcClient.connect(http, running, token("device-1", "service", ["h1"]))
        first = await device.call("healthcare.createAlert", alert_input(title="seen"))
        page = await device.call("healthcare.getAlertEvents", {"hospitalId": "h1"})
        last = page["lastEventId"]
        missed = await raise_alerts(device, 20)
        ws = await http.ws_connect(
            f"ws://127.0.0.1:{running.port}/api/trpc",
            headers={"Authorization": f"Bearer {token('nurse-1', 'nurse', ['h1'])}"},
        )
        frame = orjson.loads(
            trpc(7, "subscription", "healthcare.subscribeToAlerts", {"hospitalId": "h1"})
        )
        frame["params"]["lastEventId"] = last  # where the official client puts it
        await ws.send_str(orjson.dumps(frame).decode())
        events: list[Any] = []
        assert (await trpc_reply(ws, 7, events))["result"]["type"] == "started"
        while len(events) < len(missed):
            events.append(orjson.loads((await ws.receive(timeout=10)).data))
        assert [f["result"]["data"]["data"]["alertId"] for f in events] == [a["id"] for a in missed]
        assert all(f["result"]["id"] > last for f in events)
        assert first["id"] not in {f["result"]["data"]["data"]["alertId"] for f in events}
        await ws.close()
        await device.close()


async def test_sse_resumes_from_the_last_event_id_header(tmp_path: Path) -> None:
    async with running_server(tmp_path) as running, aiohttp.ClientSession() as http:
        device = await RpcClient.connect(http, running, token("device-1", "service", ["h1"]))
        await device.call("healthcare.createAlert", alert_input(title="seen"))
        last = (await device.call("healthcare.getAlertEvents", {"hospitalId": "h1"}))["lastEventId"]
        missed = await raise_alerts(device, 3)
        conn = enc({"token": token("viewer", "nurse", ["h1"])})
        url = (
            f"http://127.0.0.1:{running.port}/api/trpc/healthcare.subscribeToAlerts"
            f"?connectionParams={conn}&input={enc({'hospitalId': 'h1'})}"
        )
        sse = await http.get(url, headers={"Accept": "text/event-stream", "Last-Event-ID": last})
        events = await read_events(sse, 1 + len(missed))
        assert events[0]["event"] == "connected"
        assert [orjson.loads(e["data"])["alertId"] for e in events[1:]] == [a["id"] for a in missed]
        assert [e["id"] for e in events[1:]] == [orjson.loads(e["data"])["id"] for e in events[1:]]
        sse.close()
        await device.close()


async def test_a_list_alerts_snapshot_then_subscribe_from_its_position(tmp_path: Path) -> None:
    async with running_server(tmp_path) as running, aiohttp.ClientSession() as http:
        device = await RpcClient.connect(http, running, token("device-1", "service", ["h1"]))
        nurse = await RpcClient.connect(http, running, token("nurse-1", "nurse", ["h1"]))
        empty = await nurse.call("healthcare.listAlerts", {"hospitalId": "h1"})
        assert empty == {"items": [], "nextCursor": None, "lastEventId": format_event_id(0)}
        # a subscriber from the empty snapshot's position misses nothing raised in between
        early = await device.call("healthcare.createAlert", alert_input(title="early"))
        first_sid = await nurse.subscribe(
            "healthcare.subscribeToAlerts",
            {"hospitalId": "h1", "lastEventId": empty["lastEventId"]},
        )
        assert (await nurse.next_event(first_sid))["data"]["alertId"] == early["id"]
        assert await nurse.call("subscription.stop", {"subscription": first_sid}) is True
        made = await raise_alerts(device, 5)
        snapshot = await nurse.call("healthcare.listAlerts", {"hospitalId": "h1", "limit": 3})
        assert [a["id"] for a in snapshot["items"]] == [a["id"] for a in reversed(made)][:3]
        rest = await nurse.call(
            "healthcare.listAlerts",
            {"hospitalId": "h1", "limit": 3, "cursor": snapshot["nextCursor"]},
        )
        assert [a["id"] for a in rest["items"]] == [made[1]["id"], made[0]["id"], early["id"]]
        assert rest["nextCursor"] is None
        after = await device.call("healthcare.createAlert", alert_input(title="after"))
        sid = await nurse.subscribe(
            "healthcare.subscribeToAlerts",
            {"hospitalId": "h1", "lastEventId": snapshot["lastEventId"]},
        )
        first = await nurse.next_event(sid)
        assert first["data"]["alertId"] == after["id"]
        assert first["id"] > snapshot["lastEventId"]
        await nurse.close()
        await device.close()


async def test_a_position_from_the_future_is_a_reset_not_silence(tmp_path: Path) -> None:
    async with running_server(tmp_path) as running, aiohttp.ClientSession() as http:
        nurse = await RpcClient.connect(http, running, token("nurse-1", "nurse", ["h1"]))
        sid = await nurse.subscribe(
            "healthcare.subscribeToAlerts",
            {"hospitalId": "h1", "lastEventId": format_event_id(10**12)},
        )
        reset = await nurse.next_event(sid)
        assert reset["data"]["type"] == "stream.reset"
        assert reset["id"] == format_event_id(0)
        await nurse.close()
