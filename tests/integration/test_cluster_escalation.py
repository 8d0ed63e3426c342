"""Automatic escalation in a cluster (CONTRACT 7): however many nodes run, an unanswered alert
escalates exactly once per target period, and every node schedules every alert, so the node
that raised it may die and the others still escalate it. Three node processes on one
PostgreSQL schema, a 1.5 s target; the log (the `events` table) is what is counted."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

import aiohttp
import orjson
import pytest

from tests.integration.cluster import Device, cluster, kill
from tests.polling import until
from tests.postgres import fetch

TARGET_S = 1.5
PERIODS = 3
SLACK_S = 1.0  # how late an escalation may come on two busy shared cores
TARGETS = f"critical={TARGET_S},high={TARGET_S},medium={TARGET_S},low={TARGET_S}"


async def escalations(url: str, alert_id: str) -> list[tuple[float, int, str]]:
    """(time, escalation level, actor) of each alert.escalated in the log, in order."""
    rows = await fetch(
        url,
        "SELECT occurred_ts, payload FROM events WHERE alert_id = ? AND type = ? ORDER BY seq",
        alert_id,
        "alert.escalated",
    )
    return [
        (
            float(ts),
            orjson.loads(payload)["alert"]["escalationLevel"],
            orjson.loads(payload)["actorId"],
        )
        for ts, payload in rows
    ]


@pytest.mark.slow
async def test_three_nodes_escalate_once_per_period_after_the_raising_node_dies(
    tmp_path: Path, postgres_url: str
) -> None:
    async with (
        cluster(tmp_path, postgres_url, 3, ESCALATION_TARGETS=TARGETS) as nodes,
        aiohttp.ClientSession() as http,
    ):
        device = await Device.connect(http, nodes[0])
        alert_id = await device.create("Bed 12 call button")
        created = await fetch(postgres_url, "SELECT created_ts FROM alerts")
        await kill(nodes[0])  # before its first period is over: only the others remain
        await device.close()

        async def escalated_enough() -> bool:
            return len(await escalations(postgres_url, alert_id)) >= PERIODS

        await until(escalated_enough, f"{PERIODS} escalations", timeout_s=PERIODS * TARGET_S + 15)
        got = await escalations(postgres_url, alert_id)

        assert [level for _, level, _ in got] == list(range(1, len(got) + 1))
        assert {actor for _, _, actor in got} == {"system"}
        times = [created[0][0]] + [ts for ts, _, _ in got]
        gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
        # Once per period: never two escalations within one target (a second node winning
        # the same period would show as a gap of milliseconds), and none missed or late (the
        # surviving nodes had the alert scheduled from its event, not from a later reload).
        assert all(TARGET_S <= gap < TARGET_S + SLACK_S for gap in gaps), gaps

        for node in nodes[1:]:
            await kill(node)
        for node in nodes[1:]:
            assert node.proc.stderr is not None
            logged = (await asyncio.wait_for(node.proc.stderr.read(), 10)).decode()
            assert "Traceback" not in logged, logged[-2000:]
