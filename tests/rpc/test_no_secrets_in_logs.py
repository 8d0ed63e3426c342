"""No token, secret or JWT-looking string reaches a log line or a client (CONTRACT 3c, DESIGN
"Logs and metrics"). Everything is logged at DEBUG and also run through the server's JSON
formatter, across forged and good tokens on every path, bad frames and an unhandled error."""

from __future__ import annotations

import logging
import re
from typing import Any

import orjson
import pytest
from aiohttp import WSMsgType

from rpc.limits import Limits
from server.logs import JsonFormatter
from tests.conftest import SECRET, make_state, make_token
from tests.rpc import demo
from tests.rpc.test_forged_tokens import FORGERIES, PATHS, valid_token
from tests.rpc.wire import Client, call, recv, recv_close, send_json, serve

JWT_LIKE = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}")
BOOM = "secret internal detail"  # what demo.boom raises: for the log, never for the client


async def bad_frames(client: Client, seen: list[str]) -> None:
    ws = await client.ws_connect("/api/trpc", headers={"Authorization": f"Bearer {make_token()}"})
    long_id = '{"jsonrpc":"2.0","method":"system.ping","id":"' + "x" * 300 + '"}'
    for text in ("garbage", "[" * 50 + "]" * 50, long_id):
        await ws.send_str(text)
        seen.append(orjson.dumps(await recv(ws)).decode())
    await ws.send_bytes(b"\x00binary")
    seen.append(orjson.dumps(await recv(ws)).decode())
    await ws.send_frame(b'"\xff"', WSMsgType.TEXT)  # not UTF-8: the socket fails with 1007
    seen.append(str((await recv_close(ws)).extra))
    ws = await client.ws_connect(f"/api/trpc?token={make_token()}")
    await ws.send_str("x" * 5000)  # over MAX_MESSAGE_BYTES
    seen.append(str((await recv_close(ws)).extra))


async def unhandled_errors(client: Client, seen: list[str]) -> None:
    token = make_token()
    resp = await client.post(
        "/api/trpc",
        data=b'{"jsonrpc":"2.0","method":"demo.boom","id":1}',
        headers={"Authorization": f"Bearer {token}"},
    )
    seen.append(await resp.text())
    resp = await client.get("/api/trpc/demo.boom", headers={"Authorization": f"Bearer {token}"})
    seen.append(await resp.text())
    ws = await client.ws_connect("/api/trpc?connectionParams=1")
    await send_json(ws, {"method": "connectionParams", "data": {"token": token}})
    await send_json(ws, {"id": 1, "method": "query", "params": {"path": "demo.boom"}})
    reply: Any = await recv(ws)
    assert reply["error"]["data"]["code"] == "INTERNAL_SERVER_ERROR"
    seen.append(orjson.dumps(reply).decode())
    seen.append(orjson.dumps(await call(ws, "auth.authenticate", {"token": token}, id=2)).decode())
    await ws.close()


async def test_nothing_secret_in_logs_or_replies(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    seen: list[str] = []  # everything sent to clients, as text
    tokens: list[str] = []
    for forgery in FORGERIES:
        for probe, _ in PATHS.values():
            state = make_state(demo.Feed())
            state.auth = forgery.server
            token = forgery.make()
            good = valid_token(forgery.server)
            tokens += [t for t in (token, good) if t]
            async with serve(state) as client:
                refusal = await probe(client, token, forgery.server)
                seen.append(refusal.seen)
                resp = await client.get(
                    "/api/trpc/system.whoami", headers={"Authorization": f"Bearer {good}"}
                )
                seen.append(await resp.text())
    state = make_state(demo.Feed(), Limits(max_message_bytes=4096))
    async with serve(state) as client:
        await bad_frames(client, seen)
        await unhandled_errors(client, seen)

    formatter = JsonFormatter()
    lines = [formatter.format(record) for record in caplog.records]
    raw = [record.getMessage() for record in caplog.records] + [caplog.text]
    assert any("unhandled error in procedure" in line for line in lines)  # the run reached it
    assert any(BOOM in line for line in lines)  # operators get the traceback
    # bad frames reached the client-error log (throttled: one line per kind and address)
    assert any("bad_frame from 127.0.0.1: invalid JSON" in line for line in lines)
    for text in lines + raw:
        assert SECRET not in text
        assert not JWT_LIKE.search(text), text
        assert "Bearer " not in text
        for token in tokens:
            assert token not in text
    for text in seen:
        assert SECRET not in text
        assert BOOM not in text
        assert "Traceback" not in text
        assert not JWT_LIKE.search(text), text
