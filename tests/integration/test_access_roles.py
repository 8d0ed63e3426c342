"""Every procedure's roles, as the README's table says, pinned for the whole application
router (a new procedure must be placed here), and the admin-only and staff-only procedures
refused over the wire to every other role. (Healthcare, vitals, devices and rules are checked
cell by cell, and across hospitals, in test_access_matrix.py.)"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from routers.app import app_router
from rpc.context import ROLES
from server.main import Running
from tests.integration.harness import RpcClient, running_server, token
from tests.integration.test_access_matrix import MATRIX

STAFF = {"nurse", "physician", "charge_nurse", "admin"}
ADMIN = {"admin"}
ANYONE = None  # no role check: any authenticated caller (own data or a hospital check)
ROLES_OF: dict[str, set[str] | None] = {
    **MATRIX,
    "system.ping": ANYONE,
    "system.whoami": ANYONE,
    "presence.subscribe": ANYONE,
    "presence.subscribeToAlert": ANYONE,
    "presence.set": STAFF,
    "presence.viewing": STAFF,
    "notifications.list": ANYONE,
    "notifications.markRead": ANYONE,
    "notifications.markAllRead": ANYONE,
    "notifications.subscribe": ANYONE,
    "notifications.broadcast": ADMIN,
    "admin.stats": ADMIN,
    "admin.disconnect": ADMIN,
    "admin.revokeTokens": ADMIN,
    "apiKeys.create": ADMIN,
    "apiKeys.list": ADMIN,
    "apiKeys.revoke": ADMIN,
    "webhooks.create": ADMIN,
    "webhooks.list": ADMIN,
    "webhooks.delete": ADMIN,
    "webhooks.deliveries": ADMIN,
}

# Valid inputs (the role is checked after the input is read), naming hospital h1.
RESTRICTED_INPUTS: dict[str, dict[str, Any]] = {
    "presence.set": {"status": "busy"},
    "presence.viewing": {"alertId": "a-1"},
    "notifications.broadcast": {
        "hospitalId": "h1",
        "title": "Maintenance",
        "message": "02:00",
        "severity": "info",
    },
    "admin.stats": {},
    "admin.disconnect": {"sub": "someone"},
    "admin.revokeTokens": {"jti": "0123456789abcdef"},
    "apiKeys.create": {"hospitalId": "h1", "name": "nurse call", "scopes": ["alerts:write"]},
    "apiKeys.list": {"hospitalId": "h1"},
    "apiKeys.revoke": {"keyId": "key_0123456789"},
    "webhooks.create": {
        "hospitalId": "h1",
        "url": "https://example.org/hook",
        "events": ["alert.*"],
    },
    "webhooks.list": {"hospitalId": "h1"},
    "webhooks.delete": {"webhookId": "wh_0123456789"},
    "webhooks.deliveries": {"webhookId": "wh_0123456789"},
}


def test_every_procedure_has_the_roles_the_readme_gives_it() -> None:
    declared = {p.path: (set(p.roles) if p.roles is not None else None) for p in app_router}
    assert set(declared) == set(ROLES_OF), "a procedure is missing from (or extra in) ROLES_OF"
    for path, roles in ROLES_OF.items():
        expected = None if roles is None or roles == set(ROLES) else roles
        got = None if declared[path] is None or declared[path] == set(ROLES) else declared[path]
        assert got == expected, path


def test_every_restricted_procedure_outside_the_matrix_is_tried_over_the_wire() -> None:
    restricted = {
        path
        for path, roles in ROLES_OF.items()
        if roles is not None and roles != set(ROLES) and path not in MATRIX
    }
    assert restricted == set(RESTRICTED_INPUTS)


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[tuple[Running, aiohttp.ClientSession]]:
    async with running_server(tmp_path) as running, aiohttp.ClientSession() as http:
        yield running, http


@pytest.mark.parametrize("role", sorted(ROLES))
async def test_restricted_procedures_refuse_every_other_role(
    server: tuple[Running, aiohttp.ClientSession], role: str
) -> None:
    running, http = server
    client = await RpcClient.connect(http, running, token(f"{role}-r", role, ["h1"]))
    try:
        for path, params in RESTRICTED_INPUTS.items():
            allowed = ROLES_OF[path]
            assert allowed is not None
            if role in allowed:
                continue
            reply = await client.raw(path, params)
            error = reply.get("error")
            assert error is not None, (role, path, reply)
            assert error["data"]["code"] == "FORBIDDEN", (role, path, reply)
            assert "roles" in error["message"], (role, path)
    finally:
        await client.close()
