"""scripts/simulate_devices.py against a real server process: its monitors' readings are
stored, breaches become alerts, an offline monitor raises `device.offline`."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import aiohttp

from tests.integration.harness import SECRET, RpcClient, token
from tests.integration.server import ROOT, start_server

KINDS = {"heart_rate", "spo2", "systolic_bp", "diastolic_bp", "temperature", "respiratory_rate"}


class Running:
    def __init__(self, port: int) -> None:
        self.port = port


async def test_a_simulated_ward_reports_and_raises_alerts(tmp_path: Path) -> None:
    server = await start_server(
        tmp_path, JWT_SECRET=SECRET, RATE_LIMIT_PER_10S="0", DATABASE_URL="sqlite:///ward.db"
    )
    try:
        simulator = await asyncio.create_subprocess_exec(
            sys.executable,
            str(ROOT / "scripts" / "simulate_devices.py"),
            *("--hospital", "h1", "--patients", "5", "--rate", "10", "--duration", "2"),
            *("--url", server.ws_url, "--token", token("gw", "service", ["h1"])),
            *("--breach-chance", "0.2", "--offline-chance", "0.02", "--seed", "7"),
            stderr=asyncio.subprocess.PIPE,
        )
        _, err = await asyncio.wait_for(simulator.communicate(), 60)
        assert simulator.returncode == 0, err.decode()[-2000:]
        async with aiohttp.ClientSession() as http:
            nurse = await RpcClient.connect(http, Running(server.port), token())  # type: ignore[arg-type]
            devices = await nurse.call("devices.list", {"hospitalId": "h1"})
            assert len(devices) == 5
            latest = await nurse.call(
                "vitals.latest", {"hospitalId": "h1", "patientId": "sim-h1-001"}
            )
            assert {r["kind"] for r in latest["readings"]} == KINDS
            page = await nurse.call("healthcare.listAlerts", {"hospitalId": "h1"})
            types = {a["type"] for a in page["items"]}
            assert any(t.startswith("vitals.") for t in types), types
            await nurse.close()
    finally:
        await server.stop()
