"""Alert notes over real sockets, in both dialects: the `alert.noted` event reaches the
hospital's subscribers in order with the other events, a resume replays it, and the audit
trail answers after a restart of the server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import orjson

from tests.integration.harness import RpcClient, running_server, token
from tests.integration.test_alerts_wire import alert_input, trpc, trpc_reply

NOTE = "Pain now radiates to the jaw.\nECG requested."


async def test_notes_over_jsonrpc_are_streamed_replayed_and_audited(tmp_path: Path) -> None:
    async with running_server(tmp_path) as running, aiohttp.ClientSession() as http:
        device = await RpcClient.connect(http, running, token("device-1", "service", ["h1"]))
        nurse = await RpcClient.connect(http, running, token("nurse-1", "nurse", ["h1"]))
        sid = await nurse.subscribe("healthcare.subscribeToAlerts", {"hospitalId": "h1"})
        alert = await device.call("healthcare.createAlert", alert_input())
        created = await nurse.next_event(sid)
        noted = await nurse.call("healthcare.addNote", {"alertId": alert["id"], "text": NOTE})
        assert (noted["type"], noted["note"], noted["actorId"]) == ("alert.noted", NOTE, "nurse-1")
        heard = await nurse.next_event(sid)
        assert heard["data"] == noted
        assert heard["id"] > created["id"]
        await nurse.call("healthcare.resolveAlert", {"alertId": alert["id"], "resolution": "ok"})
        assert (await nurse.next_event(sid))["data"]["type"] == "alert.resolved"
        # a device may not write notes; bad text is a field error
        refused = await device.raw("healthcare.addNote", {"alertId": alert["id"], "text": "x"})
        assert refused["error"]["data"]["code"] == "FORBIDDEN"
        bad = await nurse.raw("healthcare.addNote", {"alertId": alert["id"], "text": "a\u202eb"})
        assert "text" in bad["error"]["data"]["fieldErrors"]
        empty = await nurse.raw("healthcare.addNote", {"alertId": alert["id"], "text": ""})
        assert "text" in empty["error"]["data"]["fieldErrors"]
        # a resume from the creation replays the note in its place
        again = await nurse.subscribe(
            "healthcare.subscribeToAlerts", {"hospitalId": "h1", "lastEventId": created["id"]}
        )
        replay = [(await nurse.next_event(again))["data"]["type"] for _ in range(2)]
        assert replay == ["alert.noted", "alert.resolved"]
        await nurse.close()
        await device.close()
    async with running_server(tmp_path) as running, aiohttp.ClientSession() as http:
        doctor = await RpcClient.connect(http, running, token("md-1", "physician", ["h1"]))
        trail = await doctor.call("healthcare.getAuditTrail", {"alertId": alert["id"]})
        assert trail["alertId"] == alert["id"]
        assert [(e["type"], e["actorId"], e["detail"]) for e in trail["entries"]] == [
            ("alert.created", "device-1", None),
            ("alert.noted", "nurse-1", NOTE),
            ("alert.resolved", "nurse-1", "ok"),
        ]
        assert trail["entries"][1]["eventId"] == noted["id"]
        assert trail["entries"][1]["occurredAt"] == noted["occurredAt"]
        outsider = await RpcClient.connect(http, running, token("md-2", "physician", ["h2"]))
        for method, params in (
            ("healthcare.getAuditTrail", {"alertId": alert["id"]}),
            ("healthcare.addNote", {"alertId": alert["id"], "text": "x"}),
        ):
            reply = await outsider.raw(method, params)
            assert reply["error"]["data"]["code"] == "FORBIDDEN", method
        await outsider.close()
        await doctor.close()


async def test_notes_over_trpc(tmp_path: Path) -> None:
    async with running_server(tmp_path) as running, aiohttp.ClientSession() as http:
        ws = await http.ws_connect(f"ws://127.0.0.1:{running.port}/api/trpc?connectionParams=1")
        params = {"method": "connectionParams", "data": {"token": token("cn-1", "charge_nurse")}}
        await ws.send_str(orjson.dumps(params).decode())
        events: list[Any] = []
        await ws.send_str(
            trpc(1, "subscription", "healthcare.subscribeToAlerts", {"hospitalId": "h1"})
        )
        assert (await trpc_reply(ws, 1, events))["result"]["type"] == "started"
        await ws.send_str(trpc(2, "mutation", "healthcare.createAlert", alert_input()))
        alert = (await trpc_reply(ws, 2, events))["result"]["data"]
        await ws.send_str(
            trpc(3, "mutation", "healthcare.addNote", {"alertId": alert["id"], "text": NOTE})
        )
        noted = (await trpc_reply(ws, 3, events))["result"]["data"]
        assert noted["note"] == NOTE
        await ws.send_str(trpc(4, "query", "healthcare.getAuditTrail", {"alertId": alert["id"]}))
        trail = (await trpc_reply(ws, 4, events))["result"]["data"]
        assert [e["detail"] for e in trail["entries"]] == [None, NOTE]
        data = [f["result"]["data"]["data"] for f in events if f["id"] == 1]
        assert [d["type"] for d in data] == ["alert.created", "alert.noted"]
        assert data[1] == noted
        await ws.close()
