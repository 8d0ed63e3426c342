"""Vitals in a cluster (two node processes, one PostgreSQL database, Redis): a report on one
node reaches live vitals and device-status subscribers on the other; a breach raised through
either node is one alert; rules changed on one node apply on the other at once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.integration.harness import SECRET, RpcClient, token
from tests.integration.server import ServerProcess, start_server
from tests.redis_support import shared_cluster


async def connect(
    http: aiohttp.ClientSession, server: ServerProcess, sub: str, role: str
) -> RpcClient:
    bearer = token(sub, role, ["h1"])
    ws = await http.ws_connect(server.ws_url, headers={"Authorization": f"Bearer {bearer}"})
    return RpcClient(ws)


def report(value: float, kind: str = "heart_rate") -> dict[str, Any]:
    return {
        "hospitalId": "h1",
        "patientId": "p1",
        "deviceId": "mon-1",
        "readings": [{"kind": kind, "value": value}],
    }


@pytest.mark.slow
async def test_vitals_and_rule_alerts_across_two_nodes(tmp_path: Path, postgres_url: str) -> None:
    async with shared_cluster() as (redis_url, prefix):
        env = {
            "DATABASE_URL": postgres_url,
            "REDIS_URL": redis_url,
            "ALERTWIRE_CLUSTER": prefix,
            "JWT_SECRET": SECRET,
            "RATE_LIMIT_PER_10S": "0",
        }
        a = await start_server(tmp_path, NODE_ID="node-a", **env)
        b = await start_server(tmp_path, NODE_ID="node-b", **env)
        try:
            async with aiohttp.ClientSession() as http:
                gateway_a = await connect(http, a, "gw-a", "service")
                gateway_b = await connect(http, b, "gw-b", "service")
                screen = await connect(http, b, "nurse-1", "nurse")
                charge = await connect(http, a, "cn-1", "charge_nurse")
                vitals = await screen.subscribe(
                    "vitals.subscribe", {"hospitalId": "h1", "patientId": "p1"}
                )
                assert (await screen.next_event(vitals))["data"]["readings"] == []
                devices = await screen.subscribe("devices.subscribeToStatus", {"hospitalId": "h1"})
                alerts = await screen.subscribe(
                    "healthcare.subscribeToAlerts", {"hospitalId": "h1"}
                )

                await gateway_a.call("vitals.report", report(72))
                update = (await screen.next_event(vitals))["data"]
                assert [(r["kind"], r["value"]) for r in update["readings"]] == [("heart_rate", 72)]
                device = (await screen.next_event(devices))["data"]
                assert (device["deviceId"], device["status"]) == ("mon-1", "online")

                # A breach through a, then through b: one alert, raised once.
                first = await gateway_a.call("vitals.report", report(150))
                second = await gateway_b.call("vitals.report", report(152))
                (raised,) = first["alerts"]
                assert second["alerts"] == []  # b sees the open alert in the store
                created = (await screen.next_event(alerts))["data"]
                assert (created["type"], created["alertId"]) == ("alert.created", raised["id"])

                # A rule changed on a applies on b at once.
                await charge.call(
                    "rules.upsert",
                    {
                        "hospitalId": "h1",
                        "ruleId": "default.low_spo2",
                        "kind": "spo2",
                        "op": "<",
                        "value": 95,
                        "priority": "critical",
                        "alertType": "vitals.low_spo2",
                    },
                )
                result = await gateway_b.call("vitals.report", report(93, "spo2"))
                assert [(x["type"], x["priority"]) for x in result["alerts"]] == [
                    ("vitals.low_spo2", "critical")
                ]
                for client in (gateway_a, gateway_b, screen, charge):
                    await client.close()
        finally:
            for server in (a, b):
                if server.proc.returncode is None:
                    server.proc.kill()
                    await server.proc.wait()
