"""rpc.metrics: bounded labels over prometheus_client, the exposition read back with
prometheus_client's own parser, per-procedure calls and the server's /metrics endpoint."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from rpc.metrics import CONTENT_TYPE, Metrics, Registry
from tests.conftest import make_state
from tests.rpc import demo
from tests.rpc.wire import call, enc, eventually, read_events, serve

Labels = tuple[tuple[str, str], ...]


def samples(text: str) -> dict[tuple[str, Labels], float]:
    """Every sample of a Prometheus exposition: {(sample name, sorted labels): value}."""
    found: dict[tuple[str, Labels], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = (sample.name, tuple(sorted(sample.labels.items())))
            assert key not in found, f"{key} twice"
            found[key] = sample.value
    return found


def parse(text: str) -> dict[tuple[str, str | None], float]:
    """Alertwire's counters and gauges with at most one label: {(name, label value or None):
    value} (the calls by procedure and outcome, histograms and the node's info left out)."""
    found: dict[tuple[str, str | None], float] = {}
    for family in text_string_to_metric_families(text):
        if family.type not in ("counter", "gauge") or not family.name.startswith("alertwire_"):
            continue
        for sample in family.samples:
            labels = list(sample.labels.values())
            if len(labels) <= 1 and sample.name != "alertwire_node_info":
                found[(sample.name, labels[0] if labels else None)] = sample.value
    return found


def label_values(text: str, name: str, label: str) -> set[str]:
    return {dict(labels)[label] for (n, labels), _ in samples(text).items() if n == name}


def test_labels_are_bounded_and_unknown_values_count_as_other() -> None:
    registry = Registry()
    refused = registry.counter("x_refused_total", "Refused.", "reason", ("origin", "auth"))
    refused.inc("origin")
    for n in range(1000):  # a hostile value never becomes a series of its own
        refused.inc(f"made-up-{n}")
    assert parse_all(registry) == {
        ("x_refused_total", "origin"): 1,
        ("x_refused_total", "auth"): 0,
        ("x_refused_total", "other"): 1000,
    }
    assert refused.total() == 1001
    assert refused.get("made-up-again") == 1000  # read as the series it would land in


def parse_all(registry: Registry) -> dict[tuple[str, str | None], float]:
    return {
        (n, labels[0][1] if labels else None): v
        for (n, labels), v in samples(registry.render()).items()
    }


def test_counters_only_go_up_and_gauges_go_both_ways() -> None:
    registry = Registry()
    counter = registry.counter("c_total", "A counter.")
    gauge = registry.gauge("g", "A gauge.", "transport", ("ws", "sse"))
    with pytest.raises(ValueError, match="only goes up"):
        counter.inc(amount=-1)
    gauge.inc("ws", 3)
    gauge.dec("ws")
    gauge.set(7, "sse")
    assert parse_all(registry) == {("c_total", None): 0, ("g", "ws"): 2, ("g", "sse"): 7}
    with pytest.raises(ValueError, match="Duplicated"):
        registry.counter("c_total", "Again.")
    with pytest.raises(ValueError):
        registry.counter("bad_total", "Values without a label.", None, ("a",))


def test_label_values_with_quotes_and_backslashes_survive_the_exposition() -> None:
    registry = Registry()
    registry.counter("e_total", "Help with a \\ and\na newline.", "v", ('a"b\\c',)).inc('a"b\\c')
    assert parse_all(registry) == {("e_total", 'a"b\\c'): 1}


EXISTING = {
    "alertwire_connections_open",
    "alertwire_connections_refused_total",
    "alertwire_auth_failures_total",
    "alertwire_rate_limited_total",
    "alertwire_subscriptions_open",
    "alertwire_subscriptions_refused_total",
    "alertwire_oversize_messages_total",
    "alertwire_slow_consumer_closes_total",
    "alertwire_auth_timeouts_total",
    "alertwire_token_expiries_total",
    "alertwire_bad_frames_total",
    "alertwire_http_connections_open",
    "alertwire_unauthenticated_connections_open",
    "alertwire_http_timeouts_total",
    "alertwire_outbound_queued_bytes",
    "alertwire_outbound_budget_closes_total",
    "alertwire_sse_stalls_total",
    "alertwire_client_errors_total",
    "alertwire_admin_actions_total",
    "alertwire_admin_closed_connections_total",
}


def test_every_counter_and_gauge_renders_at_zero_beside_the_runtime_collectors() -> None:
    text = Metrics(node="node-a").render()
    assert {name for name, _ in parse(text)} == EXISTING
    assert all(value == 0 for value in parse(text).values())
    found = samples(text)
    assert found[("alertwire_node_info", (("node", "node-a"),))] == 1
    names = {name for name, _ in found}
    assert {"process_cpu_seconds_total", "process_resident_memory_bytes"} <= names
    assert {"python_info", "python_gc_collections_total"} <= names
    assert "alertwire_commit_duration_seconds_count" in names
    assert "alertwire_event_delivery_seconds_count" in names
    assert not any(name.endswith("_created") for name in names)


async def test_calls_are_counted_and_timed_by_declared_path_and_outcome(token: object) -> None:
    state = make_state(demo.Feed())
    bearer = {"Authorization": f"Bearer {token()}"}  # type: ignore[operator]
    async with serve(state) as client:
        assert (await client.get("/api/trpc/demo.echo?input=" + enc({"text": "hi"}))).status == 200
        resp = await client.post("/api/trpc/demo.conflict", json={"text": "a"}, headers=bearer)
        assert resp.status == 403  # a nurse; the procedure needs an admin
        # Every way a client can name what is not a procedure: each lands on "other".
        for n in range(5):
            await client.get(f"/api/trpc/made.up{n}")
            await client.post("/api/trpc", json={"jsonrpc": "2.0", "id": 1, "method": f"x{n}"})
        ws = await client.ws_connect("/api/trpc", headers=bearer)
        await call(ws, "not.there", {})
        await ws.send_json({"id": 9, "method": "query", "params": {"path": "nope", "input": {}}})
        await ws.receive_json()
        await ws.close()
        text = await (await client.get("/metrics")).text()
    found = samples(text)
    calls = {
        dict(labels)["procedure"]: (dict(labels)["outcome"], value)
        for (name, labels), value in found.items()
        if name == "alertwire_rpc_calls_total"
    }
    assert calls == {
        "demo.echo": ("ok", 1),
        "demo.conflict": ("FORBIDDEN", 1),
        "other": ("NOT_FOUND", 12),
    }
    declared = {proc.path for proc in state.dispatcher.router} | {"other"}
    for name in ("alertwire_rpc_calls_total", "alertwire_rpc_duration_seconds_count"):
        assert label_values(text, name, "procedure") <= declared
    key = ("alertwire_rpc_duration_seconds_count", (("outcome", "ok"), ("procedure", "demo.echo")))
    assert found[key] == 1
    assert not any("made" in value or "x1" in value for _, labels in found for _, value in labels)


async def test_with_latency_metrics_off_calls_are_not_observed() -> None:
    state = make_state(demo.Feed())
    state.metrics.latency = False
    state.dispatcher.calls = None  # as ServerState does when built with Metrics(latency=False)
    async with serve(state) as client:
        assert (await client.get("/api/trpc/demo.echo?input=" + enc({"text": "hi"}))).status == 200
        text = await (await client.get("/metrics")).text()
    assert not [k for k in samples(text) if k[0] == "alertwire_rpc_calls_total"]


async def test_metrics_endpoint_and_the_open_connections_gauge(token: object) -> None:
    state = make_state(demo.Feed())
    async with serve(state) as client:

        async def scrape() -> dict[tuple[str, str | None], float]:
            resp = await client.get("/metrics")
            assert resp.status == 200
            assert resp.headers["Content-Type"] == CONTENT_TYPE
            return parse(await resp.text())

        assert (await scrape())[("alertwire_connections_open", "ws")] == 0
        sockets = [await client.ws_connect("/api/trpc") for _ in range(3)]
        url = f"/api/trpc/demo.feed?connectionParams={enc({'token': token()})}"  # type: ignore[operator]
        stream = await client.get(
            url + f"&input={enc({'hospitalId': 'h1'})}", headers={"Accept": "text/event-stream"}
        )
        await read_events(stream, 1)
        samples = await scrape()
        assert samples[("alertwire_connections_open", "ws")] == 3
        assert samples[("alertwire_connections_open", "sse")] == 1
        assert samples[("alertwire_subscriptions_open", None)] == 1
        by_kind = (("kind", "demo.feed"), ("transport", "sse"))
        assert (
            globals()["samples"](await (await client.get("/metrics")).text())[
                ("alertwire_subscriptions_by_kind", by_kind)
            ]
            == 1
        )
        for ws in sockets:
            await ws.close()
        stream.close()
        gauge = state.metrics.connections_open
        await eventually(lambda: gauge.total() == 0, "the server to see the closes")
        samples = await scrape()
        assert samples[("alertwire_connections_open", "ws")] == 0
        assert samples[("alertwire_connections_open", "sse")] == 0
        assert samples[("alertwire_subscriptions_open", None)] == 0


async def test_with_a_metrics_token_only_its_bearer_gets_the_metrics() -> None:
    state = make_state(demo.Feed())
    state.metrics_token = "scrape-" + "x" * 20
    async with serve(state) as client:
        for headers in (
            {},
            {"Authorization": "Bearer wrong-token-of-some-length"},
            {"Authorization": f"Basic {state.metrics_token}"},
            {"Authorization": f"Bearer {state.metrics_token}x"},
        ):
            resp = await client.get("/metrics", headers=headers)
            assert resp.status == 401, headers
            assert resp.headers["WWW-Authenticate"].startswith("Bearer")
            body = await resp.text()
            assert "alertwire_" not in body
            assert state.metrics_token not in body
        resp = await client.get(
            "/metrics", headers={"Authorization": f"Bearer {state.metrics_token}"}
        )
        assert resp.status == 200
        assert ("alertwire_connections_open", "ws") in parse(await resp.text())
        assert (await client.get("/health")).status == 200  # health stays open for probes
