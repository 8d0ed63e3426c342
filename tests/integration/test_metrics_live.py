"""/metrics of the server as the start script assembles it, read with prometheus_client's own
parser: the histograms move when work is done (a createAlert, an event delivered), delivery is
observed once per event whatever the number of subscribers, no label value comes from a
client, and every series the operations guide names is there."""

from __future__ import annotations

import re
from pathlib import Path

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.harness import RpcClient, running_server, token
from tests.integration.test_alerts_wire import alert_input
from tests.rpc.test_metrics import Labels, samples
from tests.rpc.wire import eventually

ROOT = Path(__file__).resolve().parents[2]
OPERATIONS = ROOT / "docs" / "operations.md"
CREATE = (("outcome", "ok"), ("procedure", "healthcare.createAlert"))


async def scrape(http: aiohttp.ClientSession, base_url: str) -> dict[tuple[str, Labels], float]:
    async with http.get(f"{base_url}/metrics") as resp:
        assert resp.status == 200
        return samples(await resp.text())


async def test_a_create_alert_moves_the_call_commit_and_delivery_histograms(
    tmp_path: Path,
) -> None:
    async with (
        running_server(tmp_path, NODE_ID="node-7") as running,
        aiohttp.ClientSession() as http,
    ):
        device = await RpcClient.connect(http, running, token("device-1", "service", ["h1"]))
        viewers = [
            await RpcClient.connect(http, running, token(f"nurse-{n}", "nurse", ["h1"]))
            for n in range(3)
        ]
        subs = [
            await v.subscribe("healthcare.subscribeToAlerts", {"hospitalId": "h1"}) for v in viewers
        ]
        before = await scrape(http, running.base_url)
        assert before[("alertwire_node_info", (("node", "node-7"),))] == 1
        assert before[("alertwire_event_delivery_seconds_count", ())] == 0
        by_kind = (("kind", "healthcare.subscribeToAlerts"), ("transport", "ws"))
        assert before[("alertwire_subscriptions_by_kind", by_kind)] == 3

        for n in range(2):
            await device.call("healthcare.createAlert", alert_input(title=f"Alert {n}"))
        for viewer, sid in zip(viewers, subs, strict=True):
            for _ in range(2):
                await viewer.next_event(sid)
        metrics = running.state.metrics
        # The delivery is observed once the writes are made, which is before the frames
        # arrive; waiting on the value itself keeps the test from relying on that.
        await eventually(lambda: metrics.delivery_seconds.total() > 0, "the delivery to count")
        after = await scrape(http, running.base_url)

        def moved(name: str, labels: Labels = ()) -> float:
            return after[(name, labels)] - before.get((name, labels), 0)

        assert moved("alertwire_rpc_calls_total", CREATE) == 2
        assert moved("alertwire_rpc_duration_seconds_count", CREATE) == 2
        assert moved("alertwire_rpc_duration_seconds_sum", CREATE) > 0
        assert moved("alertwire_commit_duration_seconds_count") >= 1  # batches, not calls
        assert moved("alertwire_commit_duration_seconds_sum") > 0
        # Two events, three subscribers: observed per event, never per subscriber.
        assert moved("alertwire_event_delivery_seconds_count") == 2
        assert 0 < moved("alertwire_event_delivery_seconds_sum") < 5
        for client in (device, *viewers):
            await client.close()


async def test_no_label_value_comes_from_a_client(tmp_path: Path) -> None:
    async with running_server(tmp_path) as running, aiohttp.ClientSession() as http:
        base = running.base_url
        bearer = {"Authorization": f"Bearer {token()}"}
        declared = {proc.path for proc in running.state.dispatcher.router}
        before = await scrape(http, base)
        for n in range(20):
            name = f"evil.{n}-{'x' * n}"
            async with http.get(f"{base}/api/trpc/{name}", headers=bearer) as resp:
                assert resp.status == 404
            body = {"jsonrpc": "2.0", "id": n, "method": name, "params": {}}
            async with http.post(f"{base}/api/trpc", json=body, headers=bearer) as resp:
                assert (await resp.json())["error"]["code"] == -32601
        after = await scrape(http, base)
    new_series = set(after) - set(before)
    assert new_series == {
        ("alertwire_rpc_calls_total", (("outcome", "NOT_FOUND"), ("procedure", "other")))
    }
    assert after[next(iter(new_series))] == 40
    for (name, labels), _ in after.items():
        if name.startswith("alertwire_rpc_"):
            assert dict(labels)["procedure"] in declared | {"other"}
        assert not any("evil" in value for _, value in labels), (name, labels)


async def test_every_series_the_operations_guide_names_is_exposed(tmp_path: Path) -> None:
    """Family names (a histogram's) and sample names (its `_bucket`, a counter's `_total`)."""
    text = OPERATIONS.read_text()
    named = set(re.findall(r"`((?:alertwire|process|python)_[a-z_]*[a-z])\b", text))
    assert len(named) > 25
    async with running_server(tmp_path) as running, aiohttp.ClientSession() as http:
        async with http.get(f"{running.base_url}/api/trpc/system.ping") as resp:
            assert resp.status == 200  # calls are counted once there is one
        resp = await http.get(f"{running.base_url}/metrics")
        families = list(text_string_to_metric_families(await resp.text()))
    exposed = {f.name for f in families} | {s.name for f in families for s in f.samples}
    assert named - exposed == set()


async def test_storage_down_is_a_series(tmp_path: Path) -> None:
    async with running_server(tmp_path) as running, aiohttp.ClientSession() as http:
        up = ("alertwire_health_ok", (("part", "storage"),))
        assert (await scrape(http, running.base_url))[up] == 1
        await running.services.store.close()  # as a lost database looks to the health check
        assert (await scrape(http, running.base_url))[up] == 0


async def test_with_latency_metrics_off_nothing_is_observed_per_call_commit_or_event(
    tmp_path: Path,
) -> None:
    async with (
        running_server(tmp_path, ALERTWIRE_LATENCY_METRICS="off") as running,
        aiohttp.ClientSession() as http,
    ):
        device = await RpcClient.connect(http, running, token("device-1", "service", ["h1"]))
        viewer = await RpcClient.connect(http, running, token("nurse-1", "nurse", ["h1"]))
        sid = await viewer.subscribe("healthcare.subscribeToAlerts", {"hospitalId": "h1"})
        await device.call("healthcare.createAlert", alert_input())
        await viewer.next_event(sid)
        found = await scrape(http, running.base_url)
        for client in (device, viewer):
            await client.close()
    assert not [k for k in found if k[0].startswith("alertwire_rpc_")]
    assert found[("alertwire_commit_duration_seconds_count", ())] == 0
    assert found[("alertwire_event_delivery_seconds_count", ())] == 0
    assert found[("alertwire_connections_open", (("transport", "ws"),))] == 2  # counters stay
