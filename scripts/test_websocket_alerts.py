"""Live smoke test against a running server: subscribe, raise, acknowledge, resolve.

    python scripts/test_websocket_alerts.py

Environment: TEST_HOSPITAL_ID (default h1); ALERTWIRE_URL (default
ws://127.0.0.1:$WEBSOCKET_PORT/api/trpc, port 3001); TEST_TOKEN, or else a development token is
minted from JWT_SECRET or the server's development secret in ./data/. Prints each step with its
latency; exits non-zero on any failure.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rpc.auth import issue_token  # noqa: E402
from server.config import ConfigError, minting_auth  # noqa: E402

STEP_TIMEOUT_S = 10.0


class SmokeFailure(Exception):
    pass


def token_for(hospital_id: str) -> str:
    given = os.environ.get("TEST_TOKEN")
    if given:
        return given
    try:
        config, _source = minting_auth()
    except ConfigError as exc:
        raise SmokeFailure(f"no TEST_TOKEN, and {exc}") from None
    return issue_token(
        config,
        sub="smoke-test",
        role="charge_nurse",
        hospitals=[hospital_id],
        ttl_seconds=600,
        now=time.time(),
        name="Smoke Test",
    )


class Client:
    """A minimal JSON-RPC 2.0 client: replies by id, notifications in a queue."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.next_id = 0
        self.pending: dict[int, asyncio.Future[Any]] = {}
        self.notifications: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type is not aiohttp.WSMsgType.TEXT:
                continue
            frame = orjson.loads(msg.data)
            future = self.pending.pop(frame.get("id"), None) if "id" in frame else None
            if future is not None:
                future.set_result(frame)
            elif "method" in frame:
                self.notifications.put_nowait(frame)

    async def call(self, method: str, params: dict[str, Any]) -> Any:
        self.next_id += 1
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.pending[self.next_id] = future
        request = {"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params}
        await self.ws.send_str(orjson.dumps(request).decode())
        reply = await asyncio.wait_for(future, STEP_TIMEOUT_S)
        if "error" in reply:
            error = reply["error"]
            raise SmokeFailure(f"{method} failed: {error.get('message')} ({error.get('code')})")
        return reply["result"]

    async def event(self, subscription: str, event_type: str, alert_id: str) -> dict[str, Any]:
        while True:
            frame = await asyncio.wait_for(self.notifications.get(), STEP_TIMEOUT_S)
            if frame.get("method") == "subscription.end":
                raise SmokeFailure(f"the server ended the subscription: {frame['params']}")
            params = frame.get("params", {})
            data = params.get("data", {})
            if (
                params.get("subscription") == subscription
                and data.get("type") == event_type
                and data.get("alertId") == alert_id
            ):
                return dict(data)


def step(name: str, started: float) -> None:
    print(f"  ok  {name:<34} {1000 * (time.perf_counter() - started):8.1f} ms", flush=True)


async def mutate_and_see(
    client: Client, sid: str, method: str, params: dict[str, Any], event_type: str, alert_id: str
) -> dict[str, Any]:
    started = time.perf_counter()
    alert = await client.call(method, params)
    step(f"{method}", started)
    event = await client.event(sid, event_type, alert_id or alert["id"])
    step(f"  event {event_type} arrived", started)
    if event.get("alert") != alert:
        raise SmokeFailure(f"the {event_type} event does not carry the alert the mutation returned")
    return dict(alert)


async def run(url: str, hospital_id: str) -> None:
    token = token_for(hospital_id)
    print(f"Alertwire smoke test: {url}, hospital {hospital_id}")
    async with aiohttp.ClientSession() as http:
        started = time.perf_counter()
        try:
            ws = await http.ws_connect(url, timeout=aiohttp.ClientWSTimeout(ws_close=5))
        except aiohttp.ClientError as exc:
            raise SmokeFailure(f"cannot connect to {url}: {exc}") from None
        step("connect", started)
        client = Client(ws)
        started = time.perf_counter()
        identity = await client.call("auth.authenticate", {"token": token})
        step(f"authenticate as {identity['sub']}", started)
        started = time.perf_counter()
        sub = await client.call("healthcare.subscribeToAlerts", {"hospitalId": hospital_id})
        sid = sub["subscription"]
        step("subscribeToAlerts", started)
        alert = await mutate_and_see(
            client,
            sid,
            "healthcare.createAlert",
            {
                "hospitalId": hospital_id,
                "type": "smoke_test",
                "priority": "low",
                "title": "Smoke test alert",
                "message": "Raised by scripts/test_websocket_alerts.py",
            },
            "alert.created",
            "",
        )
        alert_id = alert["id"]
        await mutate_and_see(
            client,
            sid,
            "healthcare.acknowledgeAlert",
            {"alertId": alert_id},
            "alert.acknowledged",
            alert_id,
        )
        resolved = await mutate_and_see(
            client,
            sid,
            "healthcare.resolveAlert",
            {"alertId": alert_id, "resolution": "smoke test complete"},
            "alert.resolved",
            alert_id,
        )
        if resolved["status"] != "resolved":
            raise SmokeFailure(f"expected status resolved, got {resolved['status']}")
        started = time.perf_counter()
        if await client.call("subscription.stop", {"subscription": sid}) is not True:
            raise SmokeFailure("subscription.stop did not confirm")
        step("subscription.stop", started)
        await ws.close()
        client.reader.cancel()
    print("PASS")


def main() -> int:
    hospital_id = os.environ.get("TEST_HOSPITAL_ID", "h1")
    port = os.environ.get("WEBSOCKET_PORT", "3001")
    url = os.environ.get("ALERTWIRE_URL", f"ws://127.0.0.1:{port}/api/trpc")
    try:
        asyncio.run(run(url, hospital_id))
    except SmokeFailure as exc:
        print(f"FAIL: {exc}", file=sys.stderr)
        return 1
    except TimeoutError:
        print(f"FAIL: no answer within {STEP_TIMEOUT_S} s", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
