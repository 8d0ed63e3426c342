"""Text inputs over the wire (CONTRACT 5a): a title holding a bidirectional override is
BAD_REQUEST with `title` in `fieldErrors` in both dialects, nothing is created, and the refused
text is not echoed; a message with line breaks and a tab is free text and goes through."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import orjson

from tests.integration.harness import RpcClient, running_server, token
from tests.integration.test_alerts_wire import alert_input, trpc, trpc_reply

# Shown as "bed fall 21" wherever bidi is honoured, while the text itself says otherwise.
SPOOFED_TITLE = "bed \u202e12 llaf\u202c"


def assert_refused_title(error: dict[str, Any]) -> None:
    assert error["data"]["code"] == "BAD_REQUEST"
    assert error["data"]["httpStatus"] == 400
    assert set(error["data"]["fieldErrors"]) == {"title"}
    assert "bidirectional" in error["data"]["fieldErrors"]["title"]
    assert "llaf" not in orjson.dumps(error).decode()


async def test_a_bidi_override_in_a_title_is_refused_over_jsonrpc(tmp_path: Path) -> None:
    async with running_server(tmp_path) as running, aiohttp.ClientSession() as http:
        device = await RpcClient.connect(http, running, token("device-1", "service", ["h1"]))
        reply = await device.raw("healthcare.createAlert", alert_input(title=SPOOFED_TITLE))
        assert reply["error"]["code"] == -32602  # JSON-RPC's own number for invalid params
        assert_refused_title(reply["error"])
        page = await device.call("healthcare.listAlerts", {"hospitalId": "h1"})
        assert page["items"] == []
        await device.close()


async def test_a_bidi_override_in_a_title_is_refused_over_trpc(tmp_path: Path) -> None:
    async with running_server(tmp_path) as running, aiohttp.ClientSession() as http:
        ws = await http.ws_connect(f"ws://127.0.0.1:{running.port}/api/trpc?connectionParams=1")
        params = {"method": "connectionParams", "data": {"token": token("device-1", "service")}}
        await ws.send_str(orjson.dumps(params).decode())
        create = alert_input(title=SPOOFED_TITLE)
        await ws.send_str(trpc(1, "mutation", "healthcare.createAlert", create))
        reply = await trpc_reply(ws, 1, [])
        assert reply["error"]["code"] == -32600  # tRPC's BAD_REQUEST
        assert_refused_title(reply["error"])
        await ws.send_str(trpc(2, "query", "healthcare.listAlerts", {"hospitalId": "h1"}))
        assert (await trpc_reply(ws, 2, []))["result"]["data"]["items"] == []
        await ws.close()


async def test_line_breaks_and_tabs_are_kept_in_free_text(tmp_path: Path) -> None:
    async with running_server(tmp_path) as running, aiohttp.ClientSession() as http:
        device = await RpcClient.connect(http, running, token("device-1", "service", ["h1"]))
        message = "Fell beside the bed.\nConscious, talking.\tBP 150/95"
        alert = await device.call("healthcare.createAlert", alert_input(message=message))
        assert alert["message"] == message
        note = await device.raw(
            "healthcare.acknowledgeAlert", {"alertId": alert["id"], "note": "on my way\x07"}
        )
        assert set(note["error"]["data"]["fieldErrors"]) == {"note"}
        await device.close()
