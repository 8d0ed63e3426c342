"""The start script on PostgreSQL (DATABASE_URL=postgresql://...), as a user runs it: health,
createAlert and the alert stream over the wire, a killed database connection, a restart and a
resume from the log."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from services.store import format_event_id
from tests.integration.harness import SECRET, RpcClient, token
from tests.integration.server import ServerProcess, start_server
from tests.integration.test_alerts_wire import alert_input
from tests.postgres import fetch, terminate_backends


async def clients(http: aiohttp.ClientSession, server: ServerProcess) -> tuple[RpcClient, ...]:
    made = []
    for bearer in (token("device-1", "service", ["h1"]), token("nurse-1", "nurse", ["h1"])):
        ws = await http.ws_connect(server.ws_url, headers={"Authorization": f"Bearer {bearer}"})
        made.append(RpcClient(ws))
    return tuple(made)


async def test_the_server_on_postgresql_end_to_end(tmp_path: Path, postgres_url: str) -> None:
    env = {"DATABASE_URL": postgres_url, "JWT_SECRET": SECRET}
    server = await start_server(tmp_path, **env)
    try:
        assert "data in postgresql://" in server.banner
        async with aiohttp.ClientSession() as http:
            async with http.get(server.url + "/health") as resp:
                assert resp.status == 200
                assert (await resp.json())["storage"] == "ok"
            device, viewer = await clients(http, server)
            sid = await viewer.subscribe("healthcare.subscribeToAlerts", {"hospitalId": "h1"})
            first = await device.call("healthcare.createAlert", alert_input(title="first"))
            event = await viewer.next_event(sid)
            assert (event["id"], event["data"]["alertId"]) == (format_event_id(1), first["id"])
            assert await fetch(postgres_url, "SELECT id FROM alerts") == [(first["id"],)]

            assert await terminate_backends(postgres_url) >= 1
            second = await device.call("healthcare.createAlert", alert_input(title="second"))
            event = await viewer.next_event(sid)
            assert (event["id"], event["data"]["alertId"]) == (format_event_id(2), second["id"])
            await device.close()
            await viewer.close()
        assert await server.stop(wait_s=10) == 0

        server = await start_server(tmp_path, **env)
        async with aiohttp.ClientSession() as http:
            device, viewer = await clients(http, server)
            third = await device.call("healthcare.createAlert", alert_input(title="third"))
            sid = await viewer.subscribe(
                "healthcare.subscribeToAlerts",
                {"hospitalId": "h1", "lastEventId": format_event_id(1)},
            )
            got = [await viewer.next_event(sid) for _ in range(2)]
            assert [e["data"]["alertId"] for e in got] == [second["id"], third["id"]]
            assert [e["id"] for e in got] == [format_event_id(2), format_event_id(3)]
            await device.close()
            await viewer.close()
        assert await server.stop(wait_s=10) == 0
    finally:
        if server.proc.returncode is None:
            server.proc.kill()
            await server.proc.wait()
