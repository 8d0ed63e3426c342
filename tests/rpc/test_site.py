"""The static site beside the API (rpc/transport_aiohttp/site.py): the page under a strict
Content-Security-Policy and never cached, content-hashed assets cached for a year, unknown
names 404, and the API's own headers unchanged."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from rpc.transport_aiohttp import create_app
from rpc.transport_aiohttp.site import content_security_policy
from tests.conftest import make_state

Client = TestClient[Any, Any]


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[Client]:
    (tmp_path / "assets").mkdir()
    (tmp_path / "index.html").write_text('<!doctype html><script src="/assets/app.1a2b.js">')
    (tmp_path / "assets" / "app.1a2b.js").write_text("console.log(1)")
    (tmp_path / "assets" / "notes.txt").write_text("not an asset type")
    (tmp_path / "secret.txt").write_text("outside the assets folder")
    test_client = TestClient(TestServer(create_app(make_state(), site_dir=tmp_path)))
    await test_client.start_server()
    yield test_client
    await test_client.close()


async def test_the_page_is_served_under_a_strict_policy_and_never_cached(
    client: Client,
) -> None:
    response = await client.get("/")
    assert response.status == 200
    assert response.content_type == "text/html"
    assert (await response.text()).startswith("<!doctype html>")
    policy = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in policy
    assert "script-src 'self'" in policy
    assert "style-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert "unsafe" not in policy
    host = f"{client.host}:{client.port}"
    assert f"connect-src 'self' ws://{host} wss://{host}" in policy
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"


async def test_hashed_assets_are_cached_and_nothing_else_is_served(client: Client) -> None:
    response = await client.get("/assets/app.1a2b.js")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/javascript")
    assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    for path in (
        "/assets/missing.js",
        "/assets/notes.txt",
        "/assets/..%2Fsecret.txt",
        "/secret.txt",
    ):
        refused = await client.get(path)
        assert refused.status == 404, path
        assert refused.headers["Cache-Control"] == "no-store"


async def test_the_api_keeps_its_headers_beside_the_site(client: Client) -> None:
    response = await client.post(
        "/api/trpc", json={"jsonrpc": "2.0", "id": 1, "method": "system.ping"}
    )
    assert (await response.json())["result"] == "pong"
    assert response.headers["Cache-Control"] == "no-store"
    assert "Content-Security-Policy" not in response.headers
    health = await client.get("/health")
    assert health.status == 200
    assert health.headers["Cache-Control"] == "no-store"


def test_a_host_header_cannot_write_into_the_policy() -> None:
    assert content_security_policy("ward.example.org:8443").endswith("frame-ancestors 'none'")
    assert "wss://ward.example.org:8443" in content_security_policy("ward.example.org:8443")
    hostile = content_security_policy("evil; script-src *")
    assert "evil" not in hostile
    assert "connect-src 'self';" in hostile
    assert "ws://" not in content_security_policy(None)
