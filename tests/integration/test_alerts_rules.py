"""The lifecycle's rules over the wire: strict inputs, CONFLICT with the current status, and
20 clinicians racing on the same alerts leaving a store and a log that agree."""

from __future__ import annotations

import asyncio
import itertools
import os
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from services.store import format_event_id
from tests.integration.harness import SECRET, RpcClient, running_server, token
from tests.integration.server import ROOT, start_server
from tests.integration.test_alerts_wire import alert_input
from tests.rpc.wire import eventually

INVALID_CREATE = [
    ({"extra": 1}, "extra"),
    ({"priority": "urgent"}, "priority"),
    ({"priority": 3}, "priority"),
    ({"title": ""}, "title"),
    ({"title": "x" * 201}, "title"),
    ({"type": ""}, "type"),
    ({"type": "has spaces"}, "type"),
    ({"hospitalId": 7}, "hospitalId"),
    ({"message": None, "location": ["a"]}, "location"),
    ({"patientId": "p" * 129}, "patientId"),
]


@pytest.mark.parametrize(("change", "field"), INVALID_CREATE)
async def test_invalid_create_inputs_are_invalid_params_naming_the_field(
    tmp_path: Path, change: dict[str, Any], field: str
) -> None:
    async with running_server(tmp_path) as running, aiohttp.ClientSession() as http:
        device = await RpcClient.connect(http, running, token("device-1", "service", ["h1"]))
        reply = await device.raw("healthcare.createAlert", {**alert_input(), **change})
        error = reply["error"]
        assert error["code"] == -32602
        assert error["data"]["code"] == "BAD_REQUEST"
        assert field in error["data"]["fieldErrors"]
        # nothing was created, and the connection still works
        page = await device.call("healthcare.listAlerts", {"hospitalId": "h1"})
        assert page["items"] == []
        await device.close()


async def test_missing_fields_and_bad_queries(tmp_path: Path) -> None:
    async with running_server(tmp_path) as running, aiohttp.ClientSession() as http:
        nurse = await RpcClient.connect(http, running, token("nurse-1", "nurse", ["h1"]))
        for method, params, field in [
            ("healthcare.createAlert", {"hospitalId": "h1"}, "title"),
            ("healthcare.acknowledgeAlert", {}, "alertId"),
            ("healthcare.listAlerts", {"hospitalId": "h1", "limit": 0}, "limit"),
            ("healthcare.listAlerts", {"hospitalId": "h1", "status": "open"}, "status"),
            ("healthcare.listAlerts", {"hospitalId": "h1", "cursor": "zz"}, "cursor"),
            ("healthcare.getAlertEvents", {"hospitalId": "h1", "limit": 5000}, "limit"),
            ("healthcare.subscribeToMetrics", {"hospitalId": "h1", "intervalMs": 10}, "intervalMs"),
        ]:
            reply = await nurse.raw(method, params)
            assert reply["error"]["code"] == -32602, (method, reply)
            assert field in reply["error"]["data"]["fieldErrors"], (method, reply)
        missing = await nurse.raw("healthcare.getAlert", {"alertId": "al_nope"})
        assert missing["error"]["code"] == -32004
        assert missing["error"]["data"]["httpStatus"] == 404
        await nurse.close()


async def test_conflicts_carry_the_current_status(tmp_path: Path) -> None:
    async with running_server(tmp_path) as running, aiohttp.ClientSession() as http:
        device = await RpcClient.connect(http, running, token("device-1", "service", ["h1"]))
        first = await RpcClient.connect(http, running, token("nurse-1", "nurse", ["h1"]))
        second = await RpcClient.connect(http, running, token("nurse-2", "nurse", ["h1"]))
        alert = await device.call("healthcare.createAlert", alert_input())
        acked = await first.call("healthcare.acknowledgeAlert", {"alertId": alert["id"]})
        again = await first.call("healthcare.acknowledgeAlert", {"alertId": alert["id"]})
        assert again == acked  # the same clinician: unchanged
        taken = await second.raw("healthcare.acknowledgeAlert", {"alertId": alert["id"]})
        assert taken["error"]["code"] == -32009
        assert taken["error"]["data"]["status"] == "acknowledged"
        await first.call("healthcare.resolveAlert", {"alertId": alert["id"]})
        for method in ("acknowledgeAlert", "escalateAlert", "resolveAlert"):
            reply = await second.raw(f"healthcare.{method}", {"alertId": alert["id"]})
            assert reply["error"]["data"]["code"] == "CONFLICT"
            assert reply["error"]["data"]["httpStatus"] == 409
            assert reply["error"]["data"]["status"] == "resolved"
        update = await device.raw("healthcare.updateAlert", {"alertId": alert["id"], "title": "x"})
        assert update["error"]["data"]["status"] == "resolved"
        for client in (device, first, second):
            await client.close()


async def test_twenty_clinicians_racing_leave_a_consistent_store_and_log(tmp_path: Path) -> None:
    async with running_server(tmp_path) as running, aiohttp.ClientSession() as http:
        device = await RpcClient.connect(http, running, token("device-1", "service", ["h1"]))
        alerts = [
            await device.call("healthcare.createAlert", alert_input(title=f"bed {n}"))
            for n in range(5)
        ]
        roles = ["nurse", "physician", "charge_nurse", "admin"]
        staff = [
            await RpcClient.connect(http, running, token(f"staff-{n}", roles[n % 4], ["h1"]))
            for n in range(20)
        ]

        async def work(client: RpcClient) -> list[dict[str, Any]]:
            replies = []
            for alert in alerts:
                for method in ("acknowledgeAlert", "escalateAlert", "acknowledgeAlert"):
                    replies.append(
                        await client.raw(f"healthcare.{method}", {"alertId": alert["id"]})
                    )
            return replies

        results = await asyncio.gather(*(work(c) for c in staff))
        replies = [r for rs in results for r in rs]
        errors = [r["error"] for r in replies if "error" in r]
        assert {e["data"]["code"] for e in errors} <= {"CONFLICT"}
        escalations = sum(
            1 for r in replies if "result" in r and r["result"]["escalationLevel"] > 0
        )
        assert escalations > 0

        page = await device.call(
            "healthcare.getAlertEvents",
            {"hospitalId": "h1", "lastEventId": format_event_id(0), "limit": 1000},
        )
        events = page["events"]
        assert len(events) < 1000
        by_alert: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for event in events:
            by_alert[event["alertId"]].append(event)
        for alert in alerts:
            history = by_alert[alert["id"]]
            versions = [e["alert"]["version"] for e in history]
            assert versions == list(range(1, len(history) + 1))  # no lost or skipped update
            final = await device.call("healthcare.getAlert", {"alertId": alert["id"]})
            assert history[-1]["alert"] == final  # replaying the log gives the final state
            escalated = [e for e in history if e["type"] == "alert.escalated"]
            assert final["escalationLevel"] == len(escalated)
            for before, after in itertools.pairwise(history):
                if after["type"] == "alert.acknowledged":
                    assert before["alert"]["status"] == "active"
        assert [e["id"] for e in events] == sorted(e["id"] for e in events)
        for client in (device, *staff):
            await client.close()


async def run_smoke(cwd: Path, env: dict[str, str]) -> tuple[int, str, str]:
    """scripts/test_websocket_alerts.py as a user runs it: (exit code, stdout, stderr)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "scripts" / "test_websocket_alerts.py"),
        cwd=cwd,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_the_smoke_script_passes_against_a_fresh_server(tmp_path: Path) -> None:
    server = await start_server(tmp_path)  # development mode: the script mints its own token
    try:
        env = {
            **{k: v for k, v in os.environ.items() if k != "JWT_SECRET"},
            "ALERTWIRE_URL": server.ws_url,
            "TEST_HOSPITAL_ID": "ward-7",
        }
        code, out, err = await run_smoke(tmp_path, env)
        assert code == 0, out + err
        assert "PASS" in out
        for step in ("createAlert", "acknowledgeAlert", "resolveAlert", "alert.resolved"):
            assert step in out
    finally:
        await server.stop()


async def test_the_smoke_script_fails_loudly_without_a_server(tmp_path: Path) -> None:
    env = {**os.environ, "ALERTWIRE_URL": "ws://127.0.0.1:9/api/trpc", "JWT_SECRET": SECRET}
    code, _, err = await run_smoke(tmp_path, env)
    assert code == 1
    assert "FAIL" in err


async def test_a_batch_of_alerts_shares_one_commit_and_answers_in_order(tmp_path: Path) -> None:
    """A gateway that sends its devices' alerts as one JSON-RPC batch: the calls run
    concurrently, so the store commits them together; replies keep the request order."""
    async with running_server(tmp_path) as running, aiohttp.ClientSession() as http:
        gateway = await RpcClient.connect(http, running, token("gateway", "service", ["h1"]))
        nurse = await RpcClient.connect(http, running, token("nurse-1", "nurse", ["h1"]))
        sid = await nurse.subscribe("healthcare.subscribeToAlerts", {"hospitalId": "h1"})
        store = running.services.store
        before = store.commits
        batch = [
            {
                "jsonrpc": "2.0",
                "id": n,
                "method": "healthcare.createAlert",
                "params": alert_input(title=f"bed {n}"),
            }
            for n in range(20)
        ]
        replies = await gateway.batch(batch)
        assert [r["id"] for r in replies] == list(range(20))
        assert [r["result"]["title"] for r in replies] == [f"bed {n}" for n in range(20)]
        assert store.commits - before < 20  # committed together, not one by one
        events = [await nurse.next_event(sid) for _ in range(20)]
        assert {e["data"]["alertId"] for e in events} == {r["result"]["id"] for r in replies}
        assert [e["id"] for e in events] == sorted(e["id"] for e in events)
        await gateway.close()
        await nurse.close()


async def test_pipelined_alerts_on_one_connection_share_a_commit_and_answer_in_order(
    tmp_path: Path,
) -> None:
    """A gateway that sends its devices' alerts one frame after another without waiting: they
    run concurrently, so those waiting for the writer are committed together."""
    async with running_server(tmp_path) as running, aiohttp.ClientSession() as http:
        gateway = await RpcClient.connect(http, running, token("gateway", "service", ["h1"]))
        nurse = await RpcClient.connect(http, running, token("nurse-1", "nurse", ["h1"]))
        sid = await nurse.subscribe("healthcare.subscribeToAlerts", {"hospitalId": "h1"})
        store = running.services.store
        # The staff directory records the nurse through the same writer, and the retention task
        # prunes once at start-up, a write at a time: let those land first, so that only the
        # 20 calls queue behind the blocker.
        await eventually(
            lambda: running.services.notifications.pending == 0, "the directory written"
        )
        await eventually(lambda: running.services.prune_rounds >= 1, "the first pruning round")
        # Hold the writer in a transaction of its own, so that the pipelined calls queue up.
        gate, holding = asyncio.Event(), asyncio.Event()

        async def blocker(tx: object) -> None:
            holding.set()
            await gate.wait()

        held = asyncio.create_task(store.transact(blocker))
        await asyncio.wait_for(holding.wait(), 5)
        before = store.commits
        calls = [
            asyncio.create_task(
                gateway.raw("healthcare.createAlert", alert_input(title=f"bed {n}"))
            )
            for n in range(20)
        ]
        await eventually(lambda: store.waiting_writes == 20, "all 20 calls to queue")
        gate.set()
        await held
        replies = await asyncio.gather(*calls)
        assert store.commits == before + 2  # the blocker's, then all 20 in one
        assert [r["result"]["title"] for r in replies] == [f"bed {n}" for n in range(20)]
        order = [f["id"] for f in gateway.log if isinstance(f, dict) and "id" in f]
        assert order == sorted(order)  # answered in the order they were sent
        events = [await nurse.next_event(sid) for _ in range(20)]
        assert {e["data"]["alertId"] for e in events} == {r["result"]["id"] for r in replies}
        await gateway.close()
        await nurse.close()


async def test_the_metrics_token_from_the_environment_guards_metrics(tmp_path: Path) -> None:
    secret = "metrics-" + "k" * 24
    async with (
        running_server(tmp_path, METRICS_TOKEN=secret) as running,
        aiohttp.ClientSession() as http,
    ):
        url = f"http://127.0.0.1:{running.port}/metrics"
        async with http.get(url) as resp:
            assert resp.status == 401
        async with http.get(url, headers={"Authorization": f"Bearer {secret}"}) as resp:
            assert resp.status == 200
            assert "alertwire_connections_open" in await resp.text()
