"""The admin procedures on one node, over the wire in both dialects (CONTRACT 11): only `admin`
may call them; `stats` counts connections, users and subscriptions by kind; `disconnect` closes
a user's connections (4001); `revokeTokens` closes the connections of revoked tokens and refuses
them afterwards on every path (HTTP, WebSocket handshake, `auth.authenticate`,
`connectionParams`, SSE), also after a restart; each use is counted in /metrics."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from rpc.auth import AuthConfig, issue_token
from server.main import Running
from tests.integration.harness import SECRET, RpcClient, running_server
from tests.integration.test_alerts_wire import enc, trpc, trpc_reply
from tests.polling import until
from tests.rpc.wire import read_events

H1 = {"hospitalId": "h1"}


def minted(sub: str, role: str = "nurse", *, age_s: float = 60.0, jti: str | None = None) -> str:
    """A token issued `age_s` seconds ago (so a revocation "now" covers it)."""
    return issue_token(
        AuthConfig(SECRET),
        sub=sub,
        role=role,
        hospitals=["h1"],
        ttl_seconds=3600,
        now=time.time() - age_s,
        jti=jti,
    )


ADMIN = minted("admin-1", "admin")


def api(running: Running) -> str:
    return f"http://127.0.0.1:{running.port}/api/trpc"


async def connect(http: aiohttp.ClientSession, running: Running, bearer: str) -> RpcClient:
    return await RpcClient.connect(http, running, bearer)


async def closed_with(client: RpcClient, code: int) -> None:
    await until(lambda: client.ws.closed, "the socket to close", 5.0)
    assert client.ws.close_code == code


async def frames_until_closed(ws: aiohttp.ClientWebSocketResponse) -> list[Any]:
    frames: list[Any] = []
    while True:
        msg = await ws.receive(timeout=5)
        if msg.type is not aiohttp.WSMsgType.TEXT:
            assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED), msg
            return frames
        frames.append(orjson.loads(msg.data))


async def trpc_post(
    http: aiohttp.ClientSession, running: Running, path: str, body: Any, bearer: str
) -> tuple[int, Any]:
    async with http.post(
        f"{api(running)}/{path}",
        data=orjson.dumps(body),
        headers={"Authorization": f"Bearer {bearer}", "Content-Type": "application/json"},
    ) as resp:
        return resp.status, await resp.json()


async def whoami_status(http: aiohttp.ClientSession, running: Running, bearer: str) -> int:
    async with http.get(
        f"{api(running)}/system.whoami", headers={"Authorization": f"Bearer {bearer}"}
    ) as resp:
        return resp.status


async def metric(http: aiohttp.ClientSession, running: Running, line: str) -> bool:
    async with http.get(f"http://127.0.0.1:{running.port}/metrics") as resp:
        return line in (await resp.text()).splitlines()


@pytest.mark.parametrize("role", ["nurse", "physician", "charge_nurse", "service"])
async def test_only_admins_may_use_them_in_either_dialect(tmp_path: Path, role: str) -> None:
    bearer = minted("someone", role)
    async with running_server(tmp_path) as running, aiohttp.ClientSession() as http:
        client = await connect(http, running, bearer)
        calls = [
            ("admin.stats", {}),
            ("admin.disconnect", {"sub": "x"}),
            ("admin.revokeTokens", {"sub": "x"}),
        ]
        for method, params in calls:
            reply = await client.raw(method, params)
            assert reply["error"]["data"]["code"] == "FORBIDDEN", reply
            if method == "admin.stats":  # a query: GET in tRPC
                async with http.get(
                    f"{api(running)}/{method}", headers={"Authorization": f"Bearer {bearer}"}
                ) as resp:
                    status, body = resp.status, await resp.json()
            else:
                status, body = await trpc_post(http, running, method, params, bearer)
            assert status == 403
            assert body["error"]["data"]["code"] == "FORBIDDEN"
        await client.close()


async def test_stats_count_connections_users_and_subscriptions_by_kind(tmp_path: Path) -> None:
    async with (
        running_server(tmp_path, NODE_ID="node-a") as running,
        aiohttp.ClientSession() as http,
    ):
        admin = await connect(http, running, ADMIN)
        nurses = [await connect(http, running, minted("n1")) for _ in range(2)]
        other = await connect(http, running, minted("n2"))
        await nurses[0].subscribe("healthcare.subscribeToAlerts", H1)
        await nurses[1].subscribe("healthcare.subscribeToAlerts", H1)
        await other.subscribe("healthcare.subscribeToMetrics", H1)
        stats = await admin.call("admin.stats", {})
        assert stats == {
            "nodes": [
                {
                    "node": "node-a",
                    "connections": 4,
                    "users": 3,
                    "subscriptions": {
                        "healthcare.subscribeToAlerts": 2,
                        "healthcare.subscribeToMetrics": 1,
                    },
                }
            ],
            "totals": {"connections": 4, "users": 3, "subscriptions": 3},
        }
        # tRPC over HTTP, filtered by a hospital the admin holds; one it does not is refused.
        async with http.get(
            f"{api(running)}/admin.stats?input={enc(H1)}",
            headers={"Authorization": f"Bearer {ADMIN}"},
        ) as resp:
            assert (await resp.json())["result"]["data"]["totals"]["subscriptions"] == 3
        reply = await admin.raw("admin.stats", {"hospitalId": "h9"})
        assert reply["error"]["data"]["code"] == "FORBIDDEN"
        assert await metric(http, running, 'alertwire_admin_actions_total{action="stats"} 2.0')
        for client in (admin, *nurses, other):
            await client.close()


async def test_disconnect_closes_every_connection_of_the_user(tmp_path: Path) -> None:
    async with running_server(tmp_path) as running, aiohttp.ClientSession() as http:
        admin = await connect(http, running, ADMIN)
        target = [await connect(http, running, minted("n1")) for _ in range(2)]
        sid = await target[0].subscribe("healthcare.subscribeToAlerts", H1)
        bystander = await connect(http, running, minted("n2"))
        sse = await http.get(
            f"{api(running)}/healthcare.subscribeToAlerts?input={enc(H1)}"
            f"&connectionParams={enc({'token': minted('n1')})}",
            headers={"Accept": "text/event-stream"},
        )
        assert (await read_events(sse, 1))[0]["event"] == "connected"
        assert await admin.call("admin.disconnect", {"sub": "n1"}) == {"closed": 3}
        for client in target:
            await closed_with(client, 4001)
        ended = await target[0].events[sid].get()
        assert ended["method"] == "subscription.end"
        error = (await read_events(sse, 1))[0]
        assert error["event"] == "serialized-error"
        assert orjson.loads(error["data"])["data"]["code"] == "UNAUTHORIZED"
        assert await bystander.call("system.whoami") is not None
        # Not a revocation: the user may connect again.
        again = await connect(http, running, minted("n1"))
        assert (await again.call("system.whoami"))["sub"] == "n1"
        status, body = await trpc_post(http, running, "admin.disconnect", {"sub": "n9"}, ADMIN)
        assert status == 200
        assert body["result"]["data"] == {"closed": 0}
        assert await metric(
            http, running, 'alertwire_admin_closed_connections_total{reason="disconnect"} 3.0'
        )
        for client in (admin, bystander, again):
            await client.close()
        sse.close()


async def refused_everywhere(http: aiohttp.ClientSession, running: Running, bearer: str) -> None:
    """The token is refused on HTTP, the WebSocket handshake, auth.authenticate,
    connectionParams and SSE, each saying it was revoked."""
    assert await whoami_status(http, running, bearer) == 401
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await http.ws_connect(
            f"ws://127.0.0.1:{running.port}/api/trpc",
            headers={"Authorization": f"Bearer {bearer}"},
        )
    assert refused.value.status == 401
    anonymous = RpcClient(await http.ws_connect(f"ws://127.0.0.1:{running.port}/api/trpc"))
    reply = await anonymous.raw("auth.authenticate", {"token": bearer})
    assert reply["error"]["data"]["code"] == "UNAUTHORIZED"
    assert reply["error"]["message"] == "Token revoked"
    await anonymous.close()
    ws = await http.ws_connect(f"ws://127.0.0.1:{running.port}/api/trpc?connectionParams=1")
    await ws.send_str(
        orjson.dumps({"method": "connectionParams", "data": {"token": bearer}}).decode()
    )
    frames = await frames_until_closed(ws)
    assert [f["error"]["message"] for f in frames] == ["Token revoked"]
    assert ws.close_code == 4001
    async with http.get(
        f"{api(running)}/healthcare.subscribeToAlerts?input={enc(H1)}"
        f"&connectionParams={enc({'token': bearer})}",
        headers={"Accept": "text/event-stream"},
    ) as sse:
        _connected, error = await read_events(sse, 2)
        assert error["event"] == "serialized-error"
        assert orjson.loads(error["data"])["message"] == "Token revoked"


async def test_revoking_a_users_tokens_closes_them_and_refuses_them_on_every_path(
    tmp_path: Path,
) -> None:
    old = minted("n1", jti="t-old")
    async with running_server(tmp_path) as running, aiohttp.ClientSession() as http:
        admin = await connect(http, running, ADMIN)
        live = await connect(http, running, old)
        ws = await http.ws_connect(f"ws://127.0.0.1:{running.port}/api/trpc?connectionParams=1")
        await ws.send_str(
            orjson.dumps({"method": "connectionParams", "data": {"token": old}}).decode()
        )
        await ws.send_str(trpc(1, "subscription", "healthcare.subscribeToAlerts", H1))
        assert (await trpc_reply(ws, 1, []))["result"]["type"] == "started"
        assert await admin.call("admin.revokeTokens", {"sub": "n1"}) == {"revoked": True}
        await closed_with(live, 4001)
        frames = await frames_until_closed(ws)
        assert frames[0]["id"] == 1  # the subscription ends with the error, then the socket
        assert frames[0]["error"]["data"]["code"] == "UNAUTHORIZED"
        assert ws.close_code == 4001
        await refused_everywhere(http, running, old)
        # A token issued after the revocation works; so do other users' tokens.
        fresh = minted("n1", age_s=-2)
        assert await whoami_status(http, running, fresh) == 200
        assert await whoami_status(http, running, minted("n2")) == 200
        assert await metric(
            http, running, 'alertwire_admin_actions_total{action="revoke_user"} 1.0'
        )
        assert await metric(http, running, 'alertwire_auth_failures_total{reason="revoked"} 5.0')
        await admin.close()
    # After a restart on the same data the revocation still holds.
    async with running_server(tmp_path) as running, aiohttp.ClientSession() as http:
        await refused_everywhere(http, running, old)
        assert await whoami_status(http, running, fresh) == 200


async def test_revoking_one_token_by_jti_and_by_an_explicit_moment(tmp_path: Path) -> None:
    stolen = minted("n1", jti="stolen")
    other = minted("n1", jti="kept")
    async with running_server(tmp_path) as running, aiohttp.ClientSession() as http:
        live_stolen = await connect(http, running, stolen)
        live_other = await connect(http, running, other)
        status, body = await trpc_post(
            http, running, "admin.revokeTokens", {"jti": "stolen"}, ADMIN
        )
        assert status == 200
        assert body["result"]["data"] == {"revoked": True}
        await closed_with(live_stolen, 4001)
        assert (await live_other.call("system.whoami"))["sub"] == "n1"
        await refused_everywhere(http, running, stolen)
        # issuedBefore in the past spares tokens issued after it.
        admin = await connect(http, running, ADMIN)
        long_ago = minted("n2", age_s=7200)
        recent = minted("n2", age_s=60)
        moment = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 3600))
        await admin.call("admin.revokeTokens", {"sub": "n2", "issuedBefore": moment})
        assert await whoami_status(http, running, long_ago) == 401
        assert await whoami_status(http, running, recent) == 200
        await live_other.close()
        await admin.close()


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"sub": "n1", "jti": "x"},
        {"jti": "x", "issuedBefore": "2026-01-01T00:00:00Z"},
        {"sub": "n1", "issuedBefore": "yesterday"},
        {"sub": "n1", "issuedBefore": "2026-01-01T00:00:00"},
        {"sub": ""},
    ],
)
async def test_bad_revocation_input_is_a_clear_bad_request(
    tmp_path: Path, params: dict[str, str]
) -> None:
    async with running_server(tmp_path) as running, aiohttp.ClientSession() as http:
        admin = await connect(http, running, ADMIN)
        reply = await admin.raw("admin.revokeTokens", params)
        assert reply["error"]["data"]["code"] == "BAD_REQUEST", reply
        assert reply["error"]["data"]["fieldErrors"], reply
        assert (await admin.call("system.whoami"))["sub"] == "admin-1"
        await admin.close()
