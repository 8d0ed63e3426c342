"""API keys and webhooks on two nodes (PostgreSQL, Redis): a key revoked on one node is refused
by the other, an Idempotency-Key holds across nodes, and an endpoint receives each event once,
in order, whichever node committed it."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import orjson
import pytest

from tests.integration.harness import SECRET, token
from tests.integration.server import ServerProcess, start_server
from tests.polling import until
from tests.redis_support import shared_cluster
from tests.services.webhook_receiver import receiver

ADMIN = token("admin-1", "admin", ["h1"])
ALERT: dict[str, object] = {
    "hospitalId": "h1",
    "type": "call_button",
    "priority": "high",
    "title": "Bed 4",
}


async def call(http: aiohttp.ClientSession, node: ServerProcess, path: str, body: object) -> object:
    headers = {"Authorization": f"Bearer {ADMIN}"}
    async with http.post(f"{node.url}/api/trpc/{path}", json=body, headers=headers) as resp:
        answer = await resp.json()
        assert resp.status == 200, answer
        return answer["result"]["data"]


async def inbound(
    http: aiohttp.ClientSession,
    node: ServerProcess,
    key: str,
    body: dict[str, object],
    **headers: str,
) -> tuple[int, bytes]:
    async with http.post(
        f"{node.url}/api/webhooks/alerts",
        data=orjson.dumps(body),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json", **headers},
    ) as resp:
        return resp.status, await resp.read()


@pytest.mark.slow
async def test_keys_and_webhooks_across_two_nodes(tmp_path: Path, postgres_url: str) -> None:
    async with shared_cluster() as (redis_url, prefix), receiver() as got:
        env = {
            "DATABASE_URL": postgres_url,
            "REDIS_URL": redis_url,
            "ALERTWIRE_CLUSTER": prefix,
            "JWT_SECRET": SECRET,
            "RATE_LIMIT_PER_10S": "0",
            "WEBHOOK_ALLOW_PRIVATE": "1",
        }
        a = await start_server(tmp_path, NODE_ID="node-a", **env)
        b = await start_server(tmp_path, NODE_ID="node-b", **env)
        try:
            async with aiohttp.ClientSession() as http:
                hook = await call(
                    http,
                    a,
                    "webhooks.create",
                    {"hospitalId": "h1", "url": got.url, "events": ["alert.created"]},
                )
                assert isinstance(hook, dict)
                created = await call(
                    http,
                    a,
                    "apiKeys.create",
                    {"hospitalId": "h1", "name": "monitor", "scopes": ["alerts:write"]},
                )
                assert isinstance(created, dict)
                key = created["key"]

                # One Idempotency-Key, two nodes: one alert, the same answer.
                first = await inbound(http, a, key, ALERT, **{"Idempotency-Key": "k-1"})
                again = await inbound(http, b, key, ALERT, **{"Idempotency-Key": "k-1"})
                assert first[0] == again[0] == 201
                assert first[1] == again[1]

                titles = [f"t{n}" for n in range(6)]
                for n, title in enumerate(titles):
                    node = a if n % 2 else b
                    status, _ = await inbound(http, node, key, {**ALERT, "title": title})
                    assert status == 201

                await until(lambda: len(got.requests) >= 7, "every delivery", 20.0)
                received = [orjson.loads(r.body) for r in got.requests]
                assert [e["alert"]["title"] for e in received] == ["Bed 4", *titles]
                ids = [e["id"] for e in received]
                assert ids == sorted(ids)
                assert len(set(ids)) == len(ids)

                # Revoked on a: b refuses it too.
                await call(http, a, "apiKeys.revoke", {"keyId": created["keyId"]})

                async def refused_on_b() -> bool:
                    return (await inbound(http, b, key, ALERT))[0] == 401

                await until(refused_on_b, "node b to refuse the revoked key", 5.0)
                assert len(got.requests) == 7  # and nothing was sent twice meanwhile
        finally:
            for server in (a, b):
                if server.proc.returncode is None:
                    server.proc.kill()
                    await server.proc.wait()
