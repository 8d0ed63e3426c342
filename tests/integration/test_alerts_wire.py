"""The alert lifecycle over real sockets: JSON-RPC and tRPC on the WebSocket, HTTP, SSE.

Each event must reach the hospital-wide subscribers and, for its alert, the alert-specific
ones, and nobody else. "Nobody else" is checked without timers: fan-out enqueues an event on
every subscriber's socket before the mutation's reply is sent, and frames on a socket keep
their order, so a reply that a subscriber receives later proves no stray event came before it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson

from tests.integration.harness import RpcClient, running_server, token
from tests.rpc.wire import read_events

H1_ALERT = {
    "hospitalId": "h1",
    "type": "call_button",
    "priority": "high",
    "title": "Call button, bed 12",
    "location": "Ward 3, bed 12",
    "patientId": "p-12",
}


def alert_input(hospital: str = "h1", **changes: Any) -> dict[str, Any]:
    return {**H1_ALERT, "hospitalId": hospital, **changes}


async def test_lifecycle_over_jsonrpc_reaches_exactly_the_right_subscribers(tmp_path: Path) -> None:
    async with running_server(tmp_path) as running, aiohttp.ClientSession() as http:
        device = await RpcClient.connect(http, running, token("device-1", "service", ["h1", "h2"]))
        nurse = await RpcClient.connect(http, running, token("nurse-1", "nurse", ["h1"]))
        watcher = await RpcClient.connect(http, running, token("nurse-2", "physician", ["h1"]))
        other = await RpcClient.connect(http, running, token("nurse-3", "nurse", ["h2"]))
        wide = await nurse.subscribe("healthcare.subscribeToAlerts", {"hospitalId": "h1"})
        h2_sub = await other.subscribe("healthcare.subscribeToAlerts", {"hospitalId": "h2"})

        alert = await device.call("healthcare.createAlert", alert_input())
        assert alert["status"] == "active"
        assert alert["escalationLevel"] == 0
        created = await nurse.next_event(wide)
        assert created["data"]["type"] == "alert.created"
        assert created["data"]["alertId"] == alert["id"]
        assert created["id"] == created["data"]["id"]
        assert created["data"]["alert"] == alert

        one = await watcher.subscribe(
            "healthcare.subscribeToAlerts", {"hospitalId": "h1", "alertId": alert["id"]}
        )
        unrelated = await device.call("healthcare.createAlert", alert_input(title="Other bed"))
        ack = await nurse.call(
            "healthcare.acknowledgeAlert", {"alertId": alert["id"], "note": "coming"}
        )
        assert ack["status"] == "acknowledged"
        assert ack["acknowledgedBy"] == "nurse-1"
        escalated = await watcher.call(
            "healthcare.escalateAlert", {"alertId": alert["id"], "reason": "no response"}
        )
        assert escalated["escalationLevel"] == 1
        assert escalated["status"] == "active"
        updated = await device.call(
            "healthcare.updateAlert", {"alertId": alert["id"], "priority": "critical"}
        )
        assert updated["priority"] == "critical"
        resolved = await nurse.call(
            "healthcare.resolveAlert", {"alertId": alert["id"], "resolution": "done"}
        )
        assert resolved["status"] == "resolved"
        assert resolved["resolvedBy"] == "nurse-1"

        changes = ["alert.acknowledged", "alert.escalated", "alert.updated", "alert.resolved"]
        seen_wide = [await nurse.next_event(wide) for _ in range(5)]
        assert [e["data"]["type"] for e in seen_wide] == ["alert.created", *changes]
        assert seen_wide[0]["data"]["alertId"] == unrelated["id"]
        ids = [created["id"]] + [e["id"] for e in seen_wide]
        assert ids == sorted(ids)
        assert len(set(ids)) == len(ids)
        seen_one = [await watcher.next_event(one) for _ in range(4)]
        assert [e["data"]["type"] for e in seen_one] == changes
        assert {e["data"]["alertId"] for e in seen_one} == {alert["id"]}
        assert seen_one[-1]["data"]["alert"] == resolved
        # nothing more for the alert-specific subscriber: its stop reply comes next
        assert await watcher.call("subscription.stop", {"subscription": one}) is True
        assert watcher.pending_events(one) == 0
        # nothing at all for the other hospital: its first event is its own alert
        own = await device.call("healthcare.createAlert", alert_input("h2"))
        first_h2 = await other.next_event(h2_sub)
        assert first_h2["data"]["alertId"] == own["id"]
        assert nurse.pending_events(wide) == 0
        for client in (device, nurse, watcher, other):
            await client.close()


def trpc(id: int, method: str, path: str, input: Any = None, **extra: Any) -> str:
    params: dict[str, Any] = {"path": path, **extra}
    if input is not None:
        params["input"] = input
    return orjson.dumps({"id": id, "method": method, "params": params}).decode()


async def trpc_reply(ws: aiohttp.ClientWebSocketResponse, want_id: int, events: list[Any]) -> Any:
    """Read frames until the reply with `want_id`; data frames of other ids go to `events`."""
    while True:
        frame = orjson.loads((await ws.receive(timeout=10)).data)
        if frame.get("id") == want_id:
            return frame
        events.append(frame)


async def test_lifecycle_over_trpc_websocket(tmp_path: Path) -> None:
    async with running_server(tmp_path) as running, aiohttp.ClientSession() as http:
        url = f"ws://127.0.0.1:{running.port}/api/trpc?connectionParams=1"
        ws = await http.ws_connect(url)
        params = {
            "method": "connectionParams",
            "data": {"token": token("cn-1", "charge_nurse", ["h1"])},
        }
        await ws.send_str(orjson.dumps(params).decode())
        events: list[Any] = []
        await ws.send_str(
            trpc(1, "subscription", "healthcare.subscribeToAlerts", {"hospitalId": "h1"})
        )
        assert (await trpc_reply(ws, 1, events))["result"]["type"] == "started"
        await ws.send_str(
            trpc(2, "mutation", "healthcare.createAlert", alert_input(priority="critical"))
        )
        alert = (await trpc_reply(ws, 2, events))["result"]["data"]
        for n, (path, extra) in enumerate(
            [
                ("healthcare.acknowledgeAlert", {}),
                ("healthcare.resolveAlert", {"resolution": "ok"}),
            ],
            start=3,
        ):
            await ws.send_str(trpc(n, "mutation", path, {"alertId": alert["id"], **extra}))
            assert "result" in await trpc_reply(ws, n, events)
        await ws.send_str(trpc(9, "query", "healthcare.getAlert", {"alertId": alert["id"]}))
        final = (await trpc_reply(ws, 9, events))["result"]["data"]
        assert final["status"] == "resolved"
        data = [f for f in events if f["id"] == 1]
        assert [f["result"]["data"]["data"]["type"] for f in data] == [
            "alert.created",
            "alert.acknowledged",
            "alert.resolved",
        ]
        for frame in data:
            assert frame["result"]["type"] == "data"
            assert frame["result"]["id"] == frame["result"]["data"]["id"]
        await ws.close()


def enc(value: Any) -> str:
    return quote(json.dumps(value, separators=(",", ":")))


async def test_lifecycle_over_http_with_an_sse_subscriber(tmp_path: Path) -> None:
    async with running_server(tmp_path) as running, aiohttp.ClientSession() as http:
        base = f"http://127.0.0.1:{running.port}/api/trpc"
        auth = {
            "Authorization": f"Bearer {token('md-1', 'physician', ['h1'])}",
            "Content-Type": "application/json",
        }
        conn = enc({"token": token("viewer", "nurse", ["h1"])})
        sse = await http.get(
            f"{base}/healthcare.subscribeToAlerts?connectionParams={conn}&input={enc({'hospitalId': 'h1'})}",
            headers={"Accept": "text/event-stream"},
        )
        assert (await read_events(sse, 1))[0]["event"] == "connected"
        # a JSON-RPC POST creates, a tRPC POST acknowledges, a tRPC GET reads
        body = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "healthcare.createAlert",
            "params": alert_input(),
        }
        async with http.post(base, data=orjson.dumps(body), headers=auth) as resp:
            alert = (await resp.json())["result"]
        async with http.post(
            f"{base}/healthcare.acknowledgeAlert",
            data=orjson.dumps({"alertId": alert["id"]}),
            headers=auth,
        ) as resp:
            assert resp.status == 200
            assert (await resp.json())["result"]["data"]["status"] == "acknowledged"
        async with http.get(
            f"{base}/healthcare.listAlerts?input={enc({'hospitalId': 'h1'})}", headers=auth
        ) as resp:
            page = (await resp.json())["result"]["data"]
        assert [a["id"] for a in page["items"]] == [alert["id"]]
        created, acked = await read_events(sse, 2)
        assert orjson.loads(created["data"])["type"] == "alert.created"
        assert orjson.loads(acked["data"])["type"] == "alert.acknowledged"
        assert page["lastEventId"] == acked["id"]
        sse.close()


async def resume_after_missing(tmp_path: Path, missed: int) -> None:
    async with running_server(tmp_path) as running, aiohttp.ClientSession() as http:
        device = await RpcClient.connect(http, running, token("device-1", "service", ["h1"]))
        viewer = await RpcClient.connect(http, running, token("nurse-1", "nurse", ["h1"]))
        sid = await viewer.subscribe("healthcare.subscribeToAlerts", {"hospitalId": "h1"})
        await device.call("healthcare.createAlert", alert_input())
        last = (await viewer.next_event(sid))["id"]
        await viewer.close()  # the lift doors close
        made = [
            await device.call("healthcare.createAlert", alert_input(title=f"Alert {n}"))
            for n in range(missed)
        ]
        viewer = await RpcClient.connect(http, running, token("nurse-1", "nurse", ["h1"]))
        sid = await viewer.subscribe(
            "healthcare.subscribeToAlerts", {"hospitalId": "h1", "lastEventId": last}
        )
        got = [await viewer.next_event(sid) for _ in range(missed)]
        assert [e["data"]["alertId"] for e in got] == [a["id"] for a in made]
        ids = [e["id"] for e in got]
        assert ids == sorted(ids)
        assert len(set(ids)) == missed
        live = await device.call("healthcare.createAlert", alert_input(title="live"))
        after = await viewer.next_event(sid)
        assert after["data"]["alertId"] == live["id"]  # no duplicate between replay and live
        await viewer.close()
        await device.close()


async def test_resume_after_50_missed_events(tmp_path: Path) -> None:
    await resume_after_missing(tmp_path, 50)


async def test_resume_after_500_missed_events(tmp_path: Path) -> None:
    await resume_after_missing(tmp_path, 500)


async def test_unknown_position_starts_with_stream_reset(tmp_path: Path) -> None:
    async with running_server(tmp_path) as running, aiohttp.ClientSession() as http:
        device = await RpcClient.connect(http, running, token("device-1", "service", ["h1"]))
        await device.call("healthcare.createAlert", alert_input())
        viewer = await RpcClient.connect(http, running, token("nurse-1", "nurse", ["h1"]))
        sid = await viewer.subscribe(
            "healthcare.subscribeToAlerts", {"hospitalId": "h1", "lastEventId": "not-a-position"}
        )
        reset = await viewer.next_event(sid)
        assert reset["data"]["type"] == "stream.reset"
        assert reset["data"]["hospitalId"] == "h1"
        live = await device.call("healthcare.createAlert", alert_input(title="after reset"))
        assert (await viewer.next_event(sid))["data"]["alertId"] == live["id"]
        await viewer.close()
        await device.close()
