"""createAlert's idempotencyKey over the wire (CONTRACT 7): in both dialects a repeat returns
the first alert and creates nothing; a key outside 1-128 characters of one line is invalid
params; and across two node processes on one PostgreSQL database a repeat on the other node,
and duplicates sent to both nodes at once, still make one alert."""

from __future__ import annotations

import asyncio
import socket
import textwrap
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from tests.integration.cluster import cluster, logged
from tests.integration.harness import RpcClient, running_server, token
from tests.integration.server import ROOT, ServerProcess
from tests.integration.test_alerts_wire import alert_input, trpc, trpc_reply


async def alerts_listed(client: RpcClient) -> list[str]:
    page = await client.call("healthcare.listAlerts", {"hospitalId": "h1", "limit": 100})
    return [item["id"] for item in page["items"]]


async def test_a_repeat_over_jsonrpc_returns_the_first_alert(tmp_path: Path) -> None:
    async with running_server(tmp_path) as running, aiohttp.ClientSession() as http:
        device = await RpcClient.connect(http, running, token("device-1", "service", ["h1"]))
        first = await device.call("healthcare.createAlert", alert_input(idempotencyKey="d1:42"))
        again = await device.call("healthcare.createAlert", alert_input(idempotencyKey="d1:42"))
        other = await device.call("healthcare.createAlert", alert_input(idempotencyKey="d1:43"))
        assert again == first
        assert other["id"] != first["id"]
        assert sorted(await alerts_listed(device)) == sorted([first["id"], other["id"]])

        for bad in ("", "k" * 129, "two\nlines"):
            reply = await device.raw("healthcare.createAlert", alert_input(idempotencyKey=bad))
            assert reply["error"]["code"] == -32602, reply
            assert "idempotencyKey" in reply["error"]["data"]["fieldErrors"], reply
        assert len(await alerts_listed(device)) == 2
        await device.close()


async def test_a_repeat_over_trpc_returns_the_first_alert(tmp_path: Path) -> None:
    async with running_server(tmp_path) as running, aiohttp.ClientSession() as http:
        ws = await http.ws_connect(f"ws://127.0.0.1:{running.port}/api/trpc?connectionParams=1")
        bearer = token("device-1", "service", ["h1"])
        await ws.send_str(
            orjson.dumps({"method": "connectionParams", "data": {"token": bearer}}).decode()
        )
        events: list[Any] = []
        created = []
        for n in (1, 2):
            body = alert_input(idempotencyKey="d1:7")
            await ws.send_str(trpc(n, "mutation", "healthcare.createAlert", body))
            created.append((await trpc_reply(ws, n, events))["result"]["data"])
        assert created[0] == created[1]
        await ws.send_str(trpc(3, "query", "healthcare.listAlerts", {"hospitalId": "h1"}))
        page = (await trpc_reply(ws, 3, events))["result"]["data"]
        assert [item["id"] for item in page["items"]] == [created[0]["id"]]
        await ws.close()


async def device_on(http: aiohttp.ClientSession, node: ServerProcess) -> RpcClient:
    bearer = token("device-1", "service", ["h1"])
    return RpcClient(
        await http.ws_connect(node.ws_url, headers={"Authorization": f"Bearer {bearer}"})
    )


async def test_retries_on_another_node_create_one_alert(tmp_path: Path, postgres_url: str) -> None:
    async with cluster(tmp_path, postgres_url, 2) as nodes, aiohttp.ClientSession() as http:
        a, b = [await device_on(http, node) for node in nodes]
        first = await a.call("healthcare.createAlert", alert_input(idempotencyKey="bed-12:1"))
        retried = await b.call("healthcare.createAlert", alert_input(idempotencyKey="bed-12:1"))
        assert retried["id"] == first["id"]

        # The same key sent to both nodes at once, many times: one alert between them.
        calls = [
            client.call("healthcare.createAlert", alert_input(idempotencyKey=f"burst:{n % 4}"))
            for n in range(24)
            for client in (a, b)
        ]
        results = await asyncio.gather(*calls)
        ids: dict[int, set[str]] = {}
        for n, result in enumerate(results):
            ids.setdefault(n // 2 % 4, set()).add(result["id"])
        assert all(len(same) == 1 for same in ids.values()), ids
        assert len(await logged(postgres_url)) == 5  # one alert.created per distinct key
        for client in (a, b):
            await client.close()


def readme_device_loop() -> dict[str, Any]:
    """The README's device loop (under "Retries are safe"), run as written."""
    text = (ROOT / "README.md").read_text()
    start = text.index("```python", text.index("**Retries are safe.**")) + len("```python")
    code = textwrap.dedent(text[start : text.index("```", start)])
    namespace: dict[str, Any] = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - our own README
    return namespace


async def test_the_readme_device_loop_retries_on_the_next_node(tmp_path: Path) -> None:
    loop = readme_device_loop()
    async with running_server(tmp_path) as running, aiohttp.ClientSession() as http:
        with socket.socket() as unused:  # a port nothing listens on: the first node is "dead"
            unused.bind(("127.0.0.1", 0))
            dead = f"http://127.0.0.1:{unused.getsockname()[1]}"
        loop["NODES"][:] = [dead, f"http://127.0.0.1:{running.port}"]
        bearer = token("device-1", "service", ["h1"])
        alert = await loop["raise_alert"](http, bearer, alert_input())
        assert alert["status"] == "active"
        viewer = await RpcClient.connect(http, running, bearer)
        assert await alerts_listed(viewer) == [alert["id"]]
        await viewer.close()
