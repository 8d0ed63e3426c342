"""/health gathers its parts from several checks: a part is "ok" only if every check reporting
it says so, and only storage trouble makes it 503 (CONTRACT 7)."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient, TestServer

from rpc.transport_aiohttp import HEALTH_KEY, create_app
from rpc.transport_aiohttp.app import HealthCheck
from tests.conftest import make_state


def check(**parts: object) -> HealthCheck:
    async def report() -> dict[str, object]:
        return dict(parts)

    return report


@pytest.mark.parametrize("degraded_first", [True, False])
async def test_a_degraded_bus_is_not_hidden_by_another_checks_ok(degraded_first: bool) -> None:
    app = create_app(make_state())
    checks = [check(bus="degraded", node="n1"), check(bus="ok")]
    app[HEALTH_KEY].extend(checks if degraded_first else checks[::-1])
    async with TestClient(TestServer(app)) as client:
        resp = await client.get("/health")
        body = await resp.json()
    assert resp.status == 200  # the node still serves its own clients
    assert (body["status"], body["bus"], body["node"]) == ("ok", "degraded", "n1")


async def test_storage_down_is_503() -> None:
    app = create_app(make_state())
    app[HEALTH_KEY].extend([check(storage="down"), check(bus="ok", node="n1")])
    async with TestClient(TestServer(app)) as client:
        resp = await client.get("/health")
        body = await resp.json()
    assert (resp.status, body["status"], body["storage"]) == (503, "degraded", "down")
