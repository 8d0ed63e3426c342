"""Who may do what, cell by cell: every role against every healthcare, vitals, devices and
rules procedure, and every procedure and subscription attempted across hospitals."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from rpc.context import ROLES
from server.main import Running
from tests.integration.harness import RpcClient, running_server, token
from tests.integration.test_alerts_wire import alert_input

CLINICAL = {"nurse", "physician", "charge_nurse", "admin"}
EVERYONE = set(ROLES)
# procedure -> roles allowed (README "Roles")
MATRIX: dict[str, set[str]] = {
    "healthcare.createAlert": EVERYONE,
    "healthcare.acknowledgeAlert": CLINICAL,
    "healthcare.escalateAlert": CLINICAL,
    "healthcare.resolveAlert": CLINICAL,
    "healthcare.updateAlert": {"service", "charge_nurse", "admin"},
    "healthcare.getAlert": EVERYONE,
    "healthcare.listAlerts": EVERYONE,
    "healthcare.getMetrics": EVERYONE,
    "healthcare.getAlertEvents": EVERYONE,
    "healthcare.subscribeToAlerts": EVERYONE,
    "healthcare.subscribeToMetrics": EVERYONE,
    "healthcare.addNote": CLINICAL,
    "healthcare.getAuditTrail": EVERYONE,
    "vitals.report": {"service"},
    "vitals.latest": EVERYONE,
    "vitals.history": EVERYONE,
    "vitals.subscribe": EVERYONE,
    "devices.reportStatus": {"service"},
    "devices.list": EVERYONE,
    "devices.subscribeToStatus": EVERYONE,
    "rules.list": EVERYONE,
    "rules.upsert": {"charge_nurse", "admin"},
    "rules.delete": {"charge_nurse", "admin"},
}
RULE = {
    "kind": "heart_rate",
    "op": ">",
    "value": 150,
    "priority": "high",
    "alertType": "vitals.high_heart_rate",
}


def params_for(method: str, alert_id: str, hospital: str = "h1") -> dict[str, Any]:
    by_alert = {"alertId": alert_id}
    return {
        "healthcare.createAlert": alert_input(hospital),
        "healthcare.acknowledgeAlert": by_alert,
        "healthcare.escalateAlert": by_alert,
        "healthcare.resolveAlert": by_alert,
        "healthcare.updateAlert": {**by_alert, "title": "changed"},
        "healthcare.getAlert": by_alert,
        "healthcare.listAlerts": {"hospitalId": hospital},
        "healthcare.getMetrics": {"hospitalId": hospital},
        "healthcare.getAlertEvents": {"hospitalId": hospital},
        "healthcare.subscribeToAlerts": {"hospitalId": hospital},
        "healthcare.subscribeToMetrics": {"hospitalId": hospital},
        "healthcare.addNote": {**by_alert, "text": "seen"},
        "healthcare.getAuditTrail": by_alert,
        "vitals.report": {
            "hospitalId": hospital,
            "patientId": "p1",
            "deviceId": "mon-1",
            "readings": [{"kind": "heart_rate", "value": 72}],
        },
        "vitals.latest": {"hospitalId": hospital, "patientId": "p1"},
        "vitals.history": {"hospitalId": hospital, "patientId": "p1"},
        "vitals.subscribe": {"hospitalId": hospital},
        "devices.reportStatus": {"hospitalId": hospital, "deviceId": "mon-1", "status": "online"},
        "devices.list": {"hospitalId": hospital},
        "devices.subscribeToStatus": {"hospitalId": hospital},
        "rules.list": {"hospitalId": hospital},
        "rules.upsert": {"hospitalId": hospital, **RULE},
        "rules.delete": {"hospitalId": hospital, "ruleId": "default.fever"},
    }[method]


@dataclass
class World:
    running: Running
    http: aiohttp.ClientSession
    device: RpcClient

    async def fresh_alert(self, hospital: str = "h1") -> str:
        alert = await self.device.call("healthcare.createAlert", alert_input(hospital))
        return str(alert["id"])

    async def client(self, role: str, hospitals: list[str]) -> RpcClient:
        return await RpcClient.connect(self.http, self.running, token(f"{role}-x", role, hospitals))


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    async with running_server(tmp_path) as running, aiohttp.ClientSession() as http:
        device = await RpcClient.connect(http, running, token("device-1", "service", ["h1", "h2"]))
        yield World(running, http, device)
        await device.close()


@pytest.mark.parametrize("role", sorted(ROLES))
async def test_role_matrix_cell_by_cell(world: World, role: str) -> None:
    client = await world.client(role, ["h1"])
    for method, allowed in MATRIX.items():
        reply = await client.raw(method, params_for(method, await world.fresh_alert()))
        if role in allowed:
            assert "result" in reply, (role, method, reply)
        else:
            error = reply["error"]
            assert error["code"] == -32003, (role, method, reply)
            assert error["data"] == {"code": "FORBIDDEN", "httpStatus": 403, "path": method}
            assert "roles" in error["message"]
    await client.close()


@pytest.mark.parametrize("role", sorted(ROLES))
async def test_every_procedure_across_hospitals_is_forbidden(world: World, role: str) -> None:
    """A caller of h2 (admin included) cannot see or change h1, by hospital or by alert."""
    outsider = await world.client(role, ["h2"])
    h1_alert = await world.fresh_alert("h1")
    for method, allowed in MATRIX.items():
        if role not in allowed:
            continue  # the role check already refuses it (tested above)
        reply = await outsider.raw(method, params_for(method, h1_alert, "h1"))
        error = reply.get("error")
        assert error is not None, (role, method, reply)
        assert error["data"]["code"] == "FORBIDDEN", (role, method, reply)
        assert "hospital" in error["message"]
        assert "h1" not in error["message"]
    # an alert-specific subscription naming its own hospital but another's alert
    reply = await outsider.raw(
        "healthcare.subscribeToAlerts", {"hospitalId": "h2", "alertId": h1_alert}
    )
    assert reply["error"]["data"]["code"] == "FORBIDDEN"
    # nothing of h1 changed
    alert = await world.device.call("healthcare.getAlert", {"alertId": h1_alert})
    assert alert["version"] == 1
    await outsider.close()


async def test_an_alert_of_another_hospital_under_ones_own_is_not_found(world: World) -> None:
    nurse = await world.client("nurse", ["h1", "h2"])
    h2_alert = await world.fresh_alert("h2")
    reply = await nurse.raw(
        "healthcare.subscribeToAlerts", {"hospitalId": "h1", "alertId": h2_alert}
    )
    assert reply["error"]["data"]["code"] == "NOT_FOUND"
    await nurse.close()


async def test_a_refreshed_token_with_fewer_hospitals_ends_those_subscriptions(
    world: World,
) -> None:
    nurse = await world.client("nurse", ["h1", "h2"])
    h1 = await nurse.subscribe("healthcare.subscribeToAlerts", {"hospitalId": "h1"})
    h2 = await nurse.subscribe("healthcare.subscribeToAlerts", {"hospitalId": "h2"})
    metrics = await nurse.subscribe("healthcare.subscribeToMetrics", {"hospitalId": "h2"})
    await nurse.next_event(metrics)  # the snapshot at once
    refreshed = await nurse.call("auth.authenticate", {"token": token("nurse-x", "nurse", ["h1"])})
    assert refreshed["hospitals"] == ["h1"]
    for sid in (h2, metrics):
        ended = await nurse.events[sid].get()
        while ended["method"] != "subscription.end":  # a metrics push may come first
            ended = await nurse.events[sid].get()
        assert ended["params"]["error"]["data"]["code"] == "FORBIDDEN"
    created = await world.device.call("healthcare.createAlert", alert_input("h1"))
    assert (await nurse.next_event(h1))["data"]["alertId"] == created["id"]
    await world.device.call("healthcare.createAlert", alert_input("h2"))
    assert await nurse.call("subscription.stop", {"subscription": h2}) is False
    await nurse.close()
