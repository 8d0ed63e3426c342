"""Devices, vitals and rules over the wire, in both dialects and over SSE: a report's breach reaches a
hospital's alert subscriber; live vitals start with the snapshot and are conflated for a slow
(`maxRateHz`) subscriber; device status streams; roles and hostile inputs with their errors.
(Cross-hospital refusals of every new procedure are in test_access_matrix.py.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import orjson

from tests.integration.harness import RpcClient, running_server, token
from tests.integration.test_alerts_wire import enc, trpc, trpc_reply
from tests.polling import until
from tests.rpc.wire import read_events

REPORT = "vitals.report"


def report(*readings: dict[str, Any], patient: str = "p1", device: str = "mon-1") -> dict[str, Any]:
    return {
        "hospitalId": "h1",
        "patientId": patient,
        "deviceId": device,
        "readings": list(readings),
    }


def hr(value: Any, **extra: Any) -> dict[str, Any]:
    return {"kind": "heart_rate", "value": value, **extra}


async def test_a_breach_reaches_an_alert_subscriber_over_json_rpc(tmp_path: Path) -> None:
    async with running_server(tmp_path) as running, aiohttp.ClientSession() as http:
        gateway = await RpcClient.connect(http, running, token("gw-1", "service", ["h1"]))
        nurse = await RpcClient.connect(http, running, token("nurse-1", "nurse", ["h1"]))
        sid = await nurse.subscribe("healthcare.subscribeToAlerts", {"hospitalId": "h1"})
        result = await gateway.call(
            REPORT, report({"kind": "systolic_bp", "value": 162, "unit": "mmHg"}, hr(80))
        )
        assert result["accepted"] == 2
        (alert,) = result["alerts"]
        event = (await nurse.next_event(sid))["data"]
        assert event["type"] == "alert.created"
        assert event["alertId"] == alert["id"]
        assert event["alert"]["type"] == "vitals.high_bp"
        assert event["alert"]["createdBy"] == "gw-1"
        assert event["alert"]["patientId"] == "p1"
        latest = await nurse.call("vitals.latest", {"hospitalId": "h1", "patientId": "p1"})
        assert {r["kind"]: r["value"] for r in latest["readings"]} == {
            "systolic_bp": 162,
            "heart_rate": 80,
        }
        page = await nurse.call(
            "vitals.history", {"hospitalId": "h1", "patientId": "p1", "limit": 1}
        )
        assert len(page["items"]) == 1
        assert page["nextCursor"] is not None
        rest = await nurse.call(
            "vitals.history",
            {"hospitalId": "h1", "patientId": "p1", "cursor": page["nextCursor"]},
        )
        assert len(rest["items"]) == 1
        assert rest["nextCursor"] is None
        for client in (gateway, nurse):
            await client.close()


async def test_a_breach_reaches_an_alert_subscriber_over_trpc(tmp_path: Path) -> None:
    async with running_server(tmp_path) as running, aiohttp.ClientSession() as http:
        ws = await http.ws_connect(f"ws://127.0.0.1:{running.port}/api/trpc?connectionParams=1")
        hello = {"method": "connectionParams", "data": {"token": token("cn-1", "charge_nurse")}}
        await ws.send_str(orjson.dumps(hello).decode())
        gw = await http.ws_connect(f"ws://127.0.0.1:{running.port}/api/trpc?connectionParams=1")
        hello = {"method": "connectionParams", "data": {"token": token("gw-1", "service")}}
        await gw.send_str(orjson.dumps(hello).decode())
        events: list[Any] = []
        await ws.send_str(
            trpc(1, "subscription", "healthcare.subscribeToAlerts", {"hospitalId": "h1"})
        )
        assert (await trpc_reply(ws, 1, events))["result"]["type"] == "started"
        await ws.send_str(trpc(2, "subscription", "vitals.subscribe", {"hospitalId": "h1"}))
        assert (await trpc_reply(ws, 2, events))["result"]["type"] == "started"
        await gw.send_str(trpc(1, "mutation", REPORT, report({"kind": "spo2", "value": 84})))
        reply = await trpc_reply(gw, 1, [])
        (alert,) = reply["result"]["data"]["alerts"]
        assert alert["type"] == "vitals.low_spo2"
        await ws.send_str(trpc(3, "query", "rules.list", {"hospitalId": "h1"}))
        rules = (await trpc_reply(ws, 3, events))["result"]["data"]
        assert any(r["alertType"] == "vitals.low_spo2" for r in rules)

        async def got_both() -> bool:
            if len([f for f in events if f.get("id") in (1, 2)]) >= 2:
                return True
            frame = orjson.loads((await ws.receive(timeout=10)).data)
            events.append(frame)
            return False

        await until(got_both, "the alert event and the vitals update")
        alert_frames = [f for f in events if f.get("id") == 1]
        assert alert_frames[0]["result"]["data"]["data"]["alertId"] == alert["id"]
        vitals_frames = [f for f in events if f.get("id") == 2]
        update = vitals_frames[0]["result"]["data"]
        assert update == {
            "patientId": "p1",
            "readings": [
                {
                    "patientId": "p1",
                    "deviceId": "mon-1",
                    "kind": "spo2",
                    "value": 84.0,
                    "unit": "%",
                    "measuredAt": update["readings"][0]["measuredAt"],
                }
            ],
        }
        await ws.close()
        await gw.close()


async def test_vitals_subscription_starts_with_the_latest_values(tmp_path: Path) -> None:
    async with running_server(tmp_path) as running, aiohttp.ClientSession() as http:
        gateway = await RpcClient.connect(http, running, token("gw-1", "service", ["h1"]))
        await gateway.call(REPORT, report(hr(70), {"kind": "spo2", "value": 97}))
        await gateway.call(REPORT, report(hr(75), patient="p2"))
        nurse = await RpcClient.connect(http, running, token("nurse-1", "nurse", ["h1"]))
        sid = await nurse.subscribe(
            "vitals.subscribe", {"hospitalId": "h1", "patientId": "p1", "kinds": ["heart_rate"]}
        )
        snapshot = (await nurse.next_event(sid))["data"]
        assert snapshot["patientId"] == "p1"
        assert [(r["kind"], r["value"]) for r in snapshot["readings"]] == [("heart_rate", 70)]
        await gateway.call(REPORT, report(hr(99, measuredAt="2020-01-01T00:00:00Z")))  # older
        await gateway.call(REPORT, report({"kind": "spo2", "value": 90}, patient="p1"))  # kind
        await gateway.call(REPORT, report(hr(101), patient="p2"))  # patient
        await gateway.call(REPORT, report(hr(72)))
        update = (await nurse.next_event(sid))["data"]
        assert [(r["kind"], r["value"]) for r in update["readings"]] == [("heart_rate", 72)]
        assert nurse.pending_events(sid) == 0
        for client in (gateway, nurse):
            await client.close()


async def test_a_burst_to_a_1_hz_subscriber_is_conflated(tmp_path: Path) -> None:
    async with running_server(tmp_path) as running, aiohttp.ClientSession() as http:
        gateway = await RpcClient.connect(http, running, token("gw-1", "service", ["h1"]))
        nurse = await RpcClient.connect(http, running, token("nurse-1", "nurse", ["h1"]))
        sid = await nurse.subscribe("vitals.subscribe", {"hospitalId": "h1", "maxRateHz": 1})
        for value in range(50, 100):
            await gateway.call(REPORT, report(hr(value)))
        updates: list[dict[str, Any]] = []

        async def last_value_arrived() -> bool:
            while nurse.pending_events(sid):
                updates.append((await nurse.next_event(sid))["data"])
            return bool(updates) and updates[-1]["readings"][0]["value"] == 99

        await until(last_value_arrived, "the last value", timeout_s=5)
        assert 1 <= len(updates) <= 4, updates
        values = [u["readings"][0]["value"] for u in updates]
        assert values == sorted(values)
        for client in (gateway, nurse):
            await client.close()


async def test_device_status_streams_and_lists(tmp_path: Path) -> None:
    async with running_server(tmp_path) as running, aiohttp.ClientSession() as http:
        gateway = await RpcClient.connect(http, running, token("gw-1", "service", ["h1"]))
        nurse = await RpcClient.connect(http, running, token("nurse-1", "nurse", ["h1"]))
        await gateway.call(REPORT, report(hr(70)))
        sid = await nurse.subscribe("devices.subscribeToStatus", {"hospitalId": "h1"})
        alerts = await nurse.subscribe("healthcare.subscribeToAlerts", {"hospitalId": "h1"})
        first = (await nurse.next_event(sid))["data"]
        assert (first["deviceId"], first["status"], first["patientId"]) == ("mon-1", "online", "p1")
        device = await gateway.call(
            "devices.reportStatus",
            {"hospitalId": "h1", "deviceId": "mon-1", "status": "offline", "detail": "unplugged"},
        )
        assert device["status"] == "offline"
        changed = (await nurse.next_event(sid))["data"]
        assert changed["status"] == "offline"
        raised = (await nurse.next_event(alerts))["data"]["alert"]
        assert (raised["type"], raised["priority"], raised["createdBy"]) == (
            "device.offline",
            "high",
            "gw-1",
        )
        listed = await nurse.call("devices.list", {"hospitalId": "h1"})
        assert [(d["deviceId"], d["status"], d["detail"]) for d in listed] == [
            ("mon-1", "offline", "unplugged")
        ]
        for client in (gateway, nurse):
            await client.close()


async def test_silence_raises_a_device_offline_alert(tmp_path: Path) -> None:
    async with (
        running_server(tmp_path, DEVICE_SILENCE_SECONDS="1") as running,
        aiohttp.ClientSession() as http,
    ):
        gateway = await RpcClient.connect(http, running, token("gw-1", "service", ["h1"]))
        nurse = await RpcClient.connect(http, running, token("nurse-1", "nurse", ["h1"]))
        alerts = await nurse.subscribe("healthcare.subscribeToAlerts", {"hospitalId": "h1"})
        await gateway.call(REPORT, report(hr(70)))
        raised = (await nurse.next_event(alerts))["data"]["alert"]
        assert (raised["type"], raised["createdBy"]) == ("device.offline", "system")
        for client in (gateway, nurse):
            await client.close()


async def test_rules_are_managed_by_charge_nurses_and_admins(tmp_path: Path) -> None:
    rule = {
        "hospitalId": "h1",
        "kind": "respiratory_rate",
        "op": ">",
        "value": 30,
        "clearValue": 25,
        "sustainSeconds": 0,
        "priority": "high",
        "alertType": "vitals.tachypnoea",
    }
    async with running_server(tmp_path) as running, aiohttp.ClientSession() as http:
        charge = await RpcClient.connect(http, running, token("cn-1", "charge_nurse", ["h1"]))
        created = await charge.call("rules.upsert", rule)
        assert created["ruleId"].startswith("rule_")
        assert created["clearValue"] == 25
        gateway = await RpcClient.connect(http, running, token("gw-1", "service", ["h1"]))
        result = await gateway.call(REPORT, report({"kind": "respiratory_rate", "value": 34}))
        assert [a["type"] for a in result["alerts"]] == ["vitals.tachypnoea"]
        deleted = await charge.call(
            "rules.delete", {"hospitalId": "h1", "ruleId": created["ruleId"]}
        )
        assert deleted == {"deleted": True}
        again = await charge.call("rules.delete", {"hospitalId": "h1", "ruleId": created["ruleId"]})
        assert again == {"deleted": False}
        for client in (charge, gateway):
            await client.close()


async def test_hostile_reports_are_refused_whole_with_their_errors(tmp_path: Path) -> None:
    async with running_server(tmp_path) as running, aiohttp.ClientSession() as http:
        gateway = await RpcClient.connect(http, running, token("gw-1", "service", ["h1"]))
        cases: list[tuple[list[Any], str, str]] = [
            ([hr(72), hr(900)], "readings.1.value", "plausibility"),
            ([hr(72), hr("72")], "readings.1.value", "valid number"),
            ([hr(True)], "readings.0.value", "valid number"),
            ([{"kind": "glucose", "value": 5}], "readings.0.kind", "heart_rate"),
            ([{"kind": "temperature", "value": 98.6, "unit": "°F"}], "readings.0.unit", "°C"),
            ([hr(72)] * 101, "readings", "at most 100"),
            ([], "readings", "at least 1"),
            ([hr(72, measuredAt="soon")], "readings.0.measuredAt", "ISO 8601"),
            ([hr(72, measuredAt="2999-01-01T00:00:00Z")], "readings.0.measuredAt", "future"),
            ([hr(72, measuredAt="2026-01-01T00:00:00")], "readings.0.measuredAt", "time zone"),
        ]
        for readings, field, words in cases:
            reply = await gateway.raw(REPORT, report(*readings))
            error = reply["error"]
            assert error["code"] == -32602, reply
            assert error["data"]["code"] == "BAD_REQUEST"
            assert words in error["data"]["fieldErrors"][field], (field, error)
        # NaN and infinities are not JSON: the frame is a parse error; the socket lives on.
        for literal in ("NaN", "Infinity", "-Infinity", "1e999"):
            text = (
                '{"jsonrpc":"2.0","id":99,"method":"vitals.report","params":{"hospitalId":"h1",'
                '"patientId":"p1","deviceId":"d","readings":[{"kind":"spo2","value":'
                + literal
                + "}]}}"
            )
            before = len(gateway.log)
            await gateway.ws.send_str(text)
            await until(lambda: len(gateway.log) > before, "the refusal")  # noqa: B023
            error = gateway.log[-1]["error"]
            assert error["code"] == -32700, error  # PARSE_ERROR: not JSON
        nurse = await RpcClient.connect(http, running, token("nurse-1", "nurse", ["h1"]))
        assert (await nurse.call("vitals.latest", {"hospitalId": "h1", "patientId": "p1"}))[
            "readings"
        ] == []
        assert await gateway.call("system.ping") == "pong"
        for client in (gateway, nurse):
            await client.close()


async def test_every_new_procedure_across_hospitals_is_forbidden_over_trpc(tmp_path: Path) -> None:
    from tests.integration.test_access_matrix import MATRIX, params_for

    new = [m for m in MATRIX if m.split(".")[0] in ("vitals", "devices", "rules")]
    kinds = {"vitals.subscribe": "subscription", "devices.subscribeToStatus": "subscription"}
    async with running_server(tmp_path) as running, aiohttp.ClientSession() as http:
        sockets: dict[str, aiohttp.ClientWebSocketResponse] = {}
        for role in ("service", "charge_nurse", "nurse"):
            ws = await http.ws_connect(f"ws://127.0.0.1:{running.port}/api/trpc?connectionParams=1")
            hello = {"method": "connectionParams", "data": {"token": token(role, role, ["h2"])}}
            await ws.send_str(orjson.dumps(hello).decode())
            sockets[role] = ws
        for n, method in enumerate(new, start=1):
            role = next(r for r in ("nurse", "charge_nurse", "service") if r in MATRIX[method])
            ws = sockets[role]
            kind = kinds.get(method) or (
                "query" if method.endswith(("latest", "history", "list")) else "mutation"
            )
            await ws.send_str(trpc(n, kind, method, params_for(method, "unused", "h1")))
            reply = await trpc_reply(ws, n, [])
            assert reply["error"]["data"]["code"] == "FORBIDDEN", (method, reply)
        for ws in sockets.values():
            await ws.close()


async def test_vitals_over_an_sse_subscription(tmp_path: Path) -> None:
    async with running_server(tmp_path) as running, aiohttp.ClientSession() as http:
        gateway = await RpcClient.connect(http, running, token("gw-1", "service", ["h1"]))
        await gateway.call(REPORT, report(hr(70)))
        conn = enc({"token": token("viewer", "nurse", ["h1"])})
        wanted = enc({"hospitalId": "h1", "patientId": "p1"})
        sse = await http.get(
            f"http://127.0.0.1:{running.port}/api/trpc/vitals.subscribe"
            f"?connectionParams={conn}&input={wanted}",
            headers={"Accept": "text/event-stream"},
        )
        connected, snapshot = await read_events(sse, 2)
        assert connected["event"] == "connected"
        assert [r["value"] for r in orjson.loads(snapshot["data"])["readings"]] == [70]
        await gateway.call(REPORT, report(hr(71)))
        (update,) = await read_events(sse, 1)
        assert [r["value"] for r in orjson.loads(update["data"])["readings"]] == [71]
        sse.close()
        await gateway.close()
