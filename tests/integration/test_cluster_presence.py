"""Two node processes of one cluster (PostgreSQL, Redis), as users run them: a nurse connected
to one node is present for a charge nurse watching on the other, with their devices and the
status they set; an assignment made through one node reaches the assignee's inbox subscription
on the other."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from tests.integration.harness import SECRET, RpcClient, token
from tests.integration.server import ServerProcess, start_server
from tests.integration.test_alerts_wire import alert_input
from tests.redis_support import shared_cluster


async def connect(
    http: aiohttp.ClientSession, node: ServerProcess, sub: str, role: str = "nurse"
) -> RpcClient:
    bearer = token(sub, role, ["h1"])
    ws = await http.ws_connect(node.ws_url, headers={"Authorization": f"Bearer {bearer}"})
    return RpcClient(ws)


@pytest.mark.slow
async def test_presence_and_notifications_cross_nodes(tmp_path: Path, postgres_url: str) -> None:
    async with shared_cluster() as (redis_url, prefix):
        env = {
            "DATABASE_URL": postgres_url,
            "REDIS_URL": redis_url,
            "ALERTWIRE_CLUSTER": prefix,
            "JWT_SECRET": SECRET,
            "MAX_CONNECTIONS_PER_USER": "0",
            "RATE_LIMIT_PER_10S": "0",
        }
        a = await start_server(tmp_path, NODE_ID="node-a", **env)
        b = await start_server(tmp_path, NODE_ID="node-b", **env)
        try:
            async with aiohttp.ClientSession() as http:
                charge = await connect(http, b, "cn-1", "charge_nurse")
                sid = await charge.subscribe("presence.subscribe", {"hospitalId": "h1"})
                snapshot = (await charge.next_event(sid))["data"]
                assert [m["sub"] for m in snapshot["members"]] == ["cn-1"]

                phone = await connect(http, a, "nurse-1")
                inbox = await phone.subscribe("notifications.subscribe", {})
                assert (await phone.next_event(inbox))["data"]["unread"] == 0
                arrived = (await charge.next_event(sid))["data"]["member"]
                assert (arrived["sub"], arrived["devices"]) == ("nurse-1", 1)
                tablet = await connect(http, b, "nurse-1")
                assert (await charge.next_event(sid))["data"]["member"]["devices"] == 2
                await phone.call("presence.set", {"status": "busy"})
                busy = (await charge.next_event(sid))["data"]["member"]
                assert (busy["sub"], busy["status"]) == ("nurse-1", "busy")

                alert = await charge.call("healthcare.createAlert", alert_input())
                await charge.call(
                    "healthcare.updateAlert", {"alertId": alert["id"], "assignedTo": "nurse-1"}
                )
                new = (await phone.next_event(inbox))["data"]
                assert new["type"] == "notification.new"
                assert new["notification"]["alertId"] == alert["id"]
                assert (await phone.next_event(inbox))["data"]["unread"] == 1
                for client in (charge, phone, tablet):
                    await client.close()
        finally:
            await a.stop()
            await b.stop()
