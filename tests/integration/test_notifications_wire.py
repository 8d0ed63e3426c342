"""Notifications over real sockets: an assignment reaching the assignee's two devices in both
dialects, reads and counts on every device, a resume after `lastEventId`, and the refusals
(broadcast is for admins of the hospital; one's inbox is one's own)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import orjson

from tests.integration.harness import RpcClient, running_server, token
from tests.integration.test_alerts_wire import alert_input, trpc, trpc_reply
from tests.polling import until


async def test_an_assignment_reaches_both_devices_and_reads_follow(tmp_path: Path) -> None:
    async with running_server(tmp_path) as running, aiohttp.ClientSession() as http:
        charge = await RpcClient.connect(http, running, token("cn-1", "charge_nurse", ["h1"]))
        phone = await RpcClient.connect(http, running, token("nurse-1", "nurse", ["h1"]))
        sid = await phone.subscribe("notifications.subscribe", {})
        assert (await phone.next_event(sid))["data"] == {"type": "notification.count", "unread": 0}
        # the tablet speaks tRPC
        ws = await http.ws_connect(f"ws://127.0.0.1:{running.port}/api/trpc?connectionParams=1")
        params = {"method": "connectionParams", "data": {"token": token("nurse-1", "nurse")}}
        await ws.send_str(orjson.dumps(params).decode())
        frames: list[Any] = []
        await ws.send_str(trpc(1, "subscription", "notifications.subscribe", {}))
        assert (await trpc_reply(ws, 1, frames))["result"]["type"] == "started"

        alert = await charge.call("healthcare.createAlert", alert_input())
        await charge.call(
            "healthcare.updateAlert", {"alertId": alert["id"], "assignedTo": "nurse-1"}
        )
        new = await phone.next_event(sid)
        assert new["data"]["type"] == "notification.new"
        item = new["data"]["notification"]
        assert (item["kind"], item["alertId"], item["hospitalId"]) == (
            "alert.assigned",
            alert["id"],
            "h1",
        )
        assert new["id"] == item["id"]
        assert item["readAt"] is None
        assert (await phone.next_event(sid))["data"] == {"type": "notification.count", "unread": 1}

        async def tablet_has(count: int) -> bool:
            while len([f for f in frames if f.get("id") == 1]) < count:
                frames.append(orjson.loads((await ws.receive(timeout=10)).data))
            return True

        await until(lambda: tablet_has(3), "the tablet's count, new and count")
        data = [f["result"]["data"] for f in frames if f.get("id") == 1]
        assert [d["data"]["type"] for d in data] == [
            "notification.count",
            "notification.new",
            "notification.count",
        ]
        assert data[1]["id"] == item["id"]

        await ws.send_str(trpc(2, "mutation", "notifications.markRead", {"ids": [item["id"]]}))
        assert (await trpc_reply(ws, 2, frames))["result"]["data"] == {
            "ids": [item["id"]],
            "unread": 0,
        }
        assert (await phone.next_event(sid))["data"] == {
            "type": "notification.read",
            "ids": [item["id"]],
        }
        assert (await phone.next_event(sid))["data"] == {"type": "notification.count", "unread": 0}
        page = await phone.call("notifications.list", {})
        assert page["unread"] == 0
        assert page["nextCursor"] is None
        assert [i["id"] for i in page["items"]] == [item["id"]]
        assert page["items"][0]["readAt"] is not None
        await ws.close()

        # missed while away, then a resume after the last id seen
        await phone.close()
        other = await charge.call("healthcare.createAlert", alert_input(title="Other"))
        await charge.call(
            "healthcare.updateAlert", {"alertId": other["id"], "assignedTo": "nurse-1"}
        )

        async def written() -> bool:
            return bool(running.services.notifications.pending == 0)

        await until(written, "the notification to be written")
        phone = await RpcClient.connect(http, running, token("nurse-1", "nurse", ["h1"]))
        sid = await phone.subscribe("notifications.subscribe", {"lastEventId": item["id"]})
        resumed = await phone.next_event(sid)
        assert resumed["data"]["notification"]["alertId"] == other["id"]
        assert (await phone.next_event(sid))["data"] == {"type": "notification.count", "unread": 1}
        all_read = await phone.call("notifications.markAllRead")
        assert all_read == {"ids": [resumed["id"]], "unread": 0}
        await phone.close()
        await charge.close()


async def test_refusals(tmp_path: Path) -> None:
    async with running_server(tmp_path) as running, aiohttp.ClientSession() as http:
        notice = {
            "hospitalId": "h1",
            "title": "Maintenance",
            "message": "02:00",
            "severity": "info",
        }
        for role in ("nurse", "physician", "charge_nurse", "service"):
            # of another hospital, so that they are not among h1's staff below
            client = await RpcClient.connect(http, running, token(f"{role}-1", role, ["h3"]))
            reply = await client.raw("notifications.broadcast", {**notice, "hospitalId": "h3"})
            assert reply["error"]["data"]["code"] == "FORBIDDEN", role
            assert "roles" in reply["error"]["message"]
            await client.close()
        outsider = await RpcClient.connect(http, running, token("adm-2", "admin", ["h2"]))
        reply = await outsider.raw("notifications.broadcast", notice)
        assert reply["error"]["data"]["code"] == "FORBIDDEN"
        nurse = await RpcClient.connect(http, running, token("nurse-1", "nurse", ["h1"]))
        admin = await RpcClient.connect(http, running, token("adm-1", "admin", ["h1"]))

        def recorded() -> bool:
            return bool(running.services.notifications.pending == 0)

        await until(recorded, "the staff directory to record both")  # done as they connect
        assert await admin.call("notifications.broadcast", notice) == {"recipients": 2}
        mine = await nurse.call("notifications.list", {"unreadOnly": True})
        assert [i["kind"] for i in mine["items"]] == ["broadcast"]
        # another user's ids change nothing
        theirs = await outsider.call("notifications.markRead", {"ids": [mine["items"][0]["id"]]})
        assert theirs == {"ids": [], "unread": 0}
        assert (await nurse.call("notifications.list", {}))["unread"] == 1
        invalid: list[dict[str, Any]] = [{"ids": []}, {"ids": ["abc"]}]
        for params in invalid:
            bad = await nurse.raw("notifications.markRead", params)
            assert "ids" in str(bad["error"]["data"]["fieldErrors"])
        bad = await nurse.raw("notifications.subscribe", {"lastEventId": "nope"})
        assert "lastEventId" in bad["error"]["data"]["fieldErrors"]
        bad = await nurse.raw("notifications.list", {"cursor": "x"})
        assert "cursor" in bad["error"]["data"]["fieldErrors"]
        for client in (nurse, admin, outsider):
            await client.close()
