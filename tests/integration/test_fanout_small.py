"""A small fan-out through the real server with the benchmark's load generator: 20 subscribers
x 20 alerts created through `healthcare.createAlert`, in both WebSocket dialects. Asserts that
every subscriber got every alert exactly once, with increasing event ids. No timing."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from pathlib import Path

import pytest

from bench.fanout import tokens
from bench.loadgen import (
    EVENT_ID_RE,
    Shared,
    Subscriber,
    WorkerSpec,
    await_delivery,
    connect_all,
    summarize,
)
from bench.progress import Pacer
from bench.publisher import MutationPublisher
from tests.integration.server import ROOT, start_server

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("routers.healthcare") is None,
    reason="the healthcare router is not there yet",
)

SECRET = "fanout-test-secret-0123456789abcdefghij"
SUBSCRIBERS = 20
ALERTS = 20


async def fan_out(
    url: str, dialect: str, sub_tokens: list[str], publisher_token: str, subs: list[Subscriber]
) -> dict[str, int]:
    """Subscribe every token (into `subs`, which the caller closes), publish ALERTS through
    `healthcare.createAlert`, wait for delivery; the load generator's count of what arrived."""
    spec = WorkerSpec(
        index=0,
        url=url,
        dialect=dialect,
        procedure="healthcare.subscribeToAlerts",
        hospital="h1",
        tokens=sub_tokens,
        events=ALERTS,
        progress_path=None,
        workers=0,
    )
    connected, errors = await connect_all(spec, Shared(ALERTS, EVENT_ID_RE[dialect]))
    subs.extend(connected)
    assert errors == []
    publisher = MutationPublisher(url, dialect, "h1", publisher_token, in_flight=4)
    report = await publisher.run(ALERTS, Pacer(None, 0.0, ALERTS, stall_s=10.0))
    assert (report.ok, report.errors) == (ALERTS, 0), report.error_samples
    await await_delivery(subs, ALERTS, idle_s=10.0)
    return summarize(subs, ALERTS)


def assert_every_alert_once(summary: dict[str, int]) -> None:
    assert summary["subscribers"] == SUBSCRIBERS
    assert summary["received"] == SUBSCRIBERS * ALERTS
    assert summary["lost"] == 0
    assert summary["duplicated"] == 0
    assert summary["unexpected"] == 0
    assert summary["ids_checked"] == SUBSCRIBERS * ALERTS
    assert summary["misordered"] == 0
    assert summary["closed_early"] == 0


@pytest.mark.parametrize("dialect", ["jsonrpc", "trpc"])
async def test_every_subscriber_gets_every_alert_once(tmp_path: Path, dialect: str) -> None:
    server = await start_server(
        tmp_path,
        JWT_SECRET=SECRET,
        DATABASE_URL=f"sqlite:///{tmp_path}/fanout.db",
        ALERTWIRE_DATA_DIR=str(tmp_path / "data"),
        RATE_LIMIT_PER_10S="0",
        MAX_CONNECTIONS_PER_USER="0",
    )
    subs: list[Subscriber] = []
    try:
        summary = await fan_out(
            server.ws_url,
            dialect,
            tokens(SECRET, 0, SUBSCRIBERS, "h1"),
            tokens(SECRET, 0, 1, "h1", "service")[0],
            subs,
        )
        assert_every_alert_once(summary)
    finally:
        for sub in subs:
            sub.close()
        await server.stop()


async def test_the_raw_socket_peer_delivers_every_alert_once() -> None:
    """The benchmark's raw-socket floor is only a fair yardstick if it delivers like a server."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.peers.raw_floor",
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    subs: list[Subscriber] = []
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        url = line.strip().removeprefix("listening on ").replace("http://", "ws://") + "/api/trpc"
        summary = await fan_out(url, "jsonrpc", [""] * SUBSCRIBERS, "", subs)
        assert_every_alert_once(summary)
    finally:
        for sub in subs:
            sub.close()
        proc.terminate()
        assert await asyncio.wait_for(proc.wait(), 10) is not None
