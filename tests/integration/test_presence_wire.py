"""Presence over real sockets: the snapshot and changes in JSON-RPC and tRPC, a second device,
`presence.set`, viewers of an alert, and the role and hospital refusals of every presence
procedure and subscription."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from rpc.auth import AuthConfig, issue_token
from tests.integration.harness import SECRET, RpcClient, running_server, token
from tests.integration.test_alerts_wire import alert_input, trpc, trpc_reply


def named(sub: str, name: str, role: str = "nurse", hospitals: list[str] | None = None) -> str:
    return issue_token(
        AuthConfig(SECRET),
        sub=sub,
        role=role,
        hospitals=hospitals or ["h1"],
        ttl_seconds=3600,
        now=time.time(),
        name=name,
    )


async def test_presence_over_jsonrpc(tmp_path: Path) -> None:
    async with running_server(tmp_path) as running, aiohttp.ClientSession() as http:
        charge = await RpcClient.connect(http, running, token("cn-1", "charge_nurse", ["h1"]))
        sid = await charge.subscribe("presence.subscribe", {"hospitalId": "h1"})
        snapshot = (await charge.next_event(sid))["data"]
        assert snapshot["type"] == "presence.snapshot"
        assert snapshot["hospitalId"] == "h1"
        assert [m["sub"] for m in snapshot["members"]] == ["cn-1"]
        assert set(snapshot["members"][0]) == {
            "sub", "name", "role", "status", "activity", "devices", "since",
        }  # fmt: skip
        phone = await RpcClient.connect(http, running, named("nurse-1", "Ana Silva"))
        arrived = (await charge.next_event(sid))["data"]
        assert arrived["type"] == "presence.changed"
        assert (arrived["member"]["name"], arrived["member"]["devices"]) == ("Ana Silva", 1)
        tablet = await RpcClient.connect(http, running, named("nurse-1", "Ana Silva"))
        assert (await charge.next_event(sid))["data"]["member"]["devices"] == 2
        state = await tablet.call("presence.set", {"status": "busy", "activity": "Bed 12"})
        assert state == {"status": "busy", "activity": "Bed 12"}
        busy = (await charge.next_event(sid))["data"]["member"]
        assert (busy["status"], busy["activity"], busy["devices"]) == ("busy", "Bed 12", 2)
        other = await RpcClient.connect(http, running, token("nurse-9", "nurse", ["h2"]))
        device = await RpcClient.connect(http, running, token("device-1", "service", ["h1"]))
        # neither h2's nurse nor a device shows: the next event is about nurse-1 again
        await phone.close()
        left_one = (await charge.next_event(sid))["data"]["member"]
        assert (left_one["sub"], left_one["devices"]) == ("nurse-1", 1)

        alert = await device.call("healthcare.createAlert", alert_input())
        watch = await charge.subscribe("presence.subscribeToAlert", {"alertId": alert["id"]})
        first = (await charge.next_event(watch))["data"]
        assert first == {"type": "alert.viewers", "alertId": alert["id"], "viewers": []}
        now = await tablet.call("presence.viewing", {"alertId": alert["id"], "typing": True})
        expected = [{"sub": "nurse-1", "name": "Ana Silva", "role": "nurse", "typing": True}]
        assert now["viewers"] == expected
        assert (await charge.next_event(watch))["data"]["viewers"] == expected
        await tablet.close()  # the last device: its look ends at once
        assert (await charge.next_event(watch))["data"]["viewers"] == []
        for client in (charge, other, device):
            await client.close()


async def test_presence_over_trpc(tmp_path: Path) -> None:
    async with running_server(tmp_path) as running, aiohttp.ClientSession() as http:
        ws = await http.ws_connect(f"ws://127.0.0.1:{running.port}/api/trpc?connectionParams=1")
        params = {
            "method": "connectionParams",
            "data": {"token": named("md-1", "Dr Lee", "physician")},
        }
        await ws.send_str(orjson.dumps(params).decode())
        events: list[Any] = []
        await ws.send_str(trpc(1, "subscription", "presence.subscribe", {"hospitalId": "h1"}))
        assert (await trpc_reply(ws, 1, events))["result"]["type"] == "started"
        await ws.send_str(trpc(2, "mutation", "presence.set", {"activity": "Ward round"}))
        assert (await trpc_reply(ws, 2, events))["result"]["data"] == {
            "status": "online",
            "activity": "Ward round",
        }
        while len([f for f in events if f["id"] == 1]) < 2:
            events.append(orjson.loads((await ws.receive(timeout=10)).data))
        data = [f["result"]["data"] for f in events if f["id"] == 1]
        assert data[0]["type"] == "presence.snapshot"
        assert data[0]["members"][0]["name"] == "Dr Lee"
        assert data[1]["type"] == "presence.changed"
        assert data[1]["member"]["activity"] == "Ward round"
        await ws.close()


async def test_presence_roles_and_hospitals_are_checked(tmp_path: Path) -> None:
    async with running_server(tmp_path) as running, aiohttp.ClientSession() as http:
        device = await RpcClient.connect(http, running, token("device-1", "service", ["h1"]))
        alert = await device.call("healthcare.createAlert", alert_input())
        for method, params in (
            ("presence.set", {"status": "busy"}),
            ("presence.viewing", {"alertId": alert["id"]}),
        ):
            reply = await device.raw(method, params)
            assert reply["error"]["data"]["code"] == "FORBIDDEN", method
        # a device may watch (a wall display), within its hospitals
        await device.subscribe("presence.subscribe", {"hospitalId": "h1"})
        for role in ("nurse", "physician", "charge_nurse", "admin", "service"):
            outsider = await RpcClient.connect(http, running, token(f"{role}-x", role, ["h2"]))
            for method, params in (
                ("presence.subscribe", {"hospitalId": "h1"}),
                ("presence.subscribeToAlert", {"alertId": alert["id"]}),
                ("presence.viewing", {"alertId": alert["id"]}),
            ):
                reply = await outsider.raw(method, params)
                assert reply["error"]["data"]["code"] == "FORBIDDEN", (role, method)
            await outsider.close()
        nurse = await RpcClient.connect(http, running, token("nurse-1", "nurse", ["h1"]))
        bad = await nurse.raw("presence.set", {"status": "asleep"})
        assert "status" in bad["error"]["data"]["fieldErrors"]
        bad = await nurse.raw("presence.set", {"activity": "a\nb"})
        assert "activity" in bad["error"]["data"]["fieldErrors"]
        await nurse.close()
        await device.close()
