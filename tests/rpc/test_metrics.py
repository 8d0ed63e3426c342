"""rpc.metrics: bounded labels, counters and gauges, and the Prometheus text exposition."""

from __future__ import annotations

import re

import pytest

from rpc.metrics import CONTENT_TYPE, Metrics, Registry
from tests.conftest import make_state
from tests.rpc import demo
from tests.rpc.wire import enc, eventually, read_events, serve

SAMPLE = re.compile(r'^([a-z_]+)(?:\{([a-z_]+)="((?:[^"\\]|\\.)*)"\})? (-?[0-9.e+]+)$')


def parse(text: str) -> dict[tuple[str, str | None], float]:
    """Prometheus text format -> {(name, label value or None): value}; checks every line."""
    samples: dict[tuple[str, str | None], float] = {}
    typed: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert kind in ("counter", "gauge")
            typed.add(name)
        elif line.startswith("# HELP "):
            assert len(line.split(" ", 3)) == 4
        else:
            match = SAMPLE.match(line)
            assert match, line
            name, _label, value, number = match.groups()
            assert name in typed, f"{name} has no TYPE line before it"
            samples[(name, value)] = float(number)
    return samples


def test_labels_are_bounded_and_unknown_values_count_as_other() -> None:
    registry = Registry()
    refused = registry.counter("x_refused_total", "Refused.", "reason", ("origin", "auth"))
    refused.inc("origin")
    for n in range(1000):  # a hostile value never becomes a series of its own
        refused.inc(f"made-up-{n}")
    samples = parse(registry.render())
    assert samples == {
        ("x_refused_total", "origin"): 1,
        ("x_refused_total", "auth"): 0,
        ("x_refused_total", "other"): 1000,
    }
    assert refused.total() == 1001


def test_counters_only_go_up_and_gauges_go_both_ways() -> None:
    registry = Registry()
    counter = registry.counter("c_total", "A counter.")
    gauge = registry.gauge("g", "A gauge.", "transport", ("ws", "sse"))
    with pytest.raises(ValueError, match="only goes up"):
        counter.inc(amount=-1)
    gauge.inc("ws", 3)
    gauge.dec("ws")
    gauge.set(7, "sse")
    assert parse(registry.render()) == {
        ("c_total", None): 0,
        ("g", "ws"): 2,
        ("g", "sse"): 7,
    }
    with pytest.raises(ValueError, match="duplicate"):
        registry.counter("c_total", "Again.")
    with pytest.raises(ValueError):
        registry.counter("bad_total", "Values without a label.", None, ("a",))


def test_exposition_escapes_help_and_label_values() -> None:
    registry = Registry()
    registry.counter("e_total", "Help with a \\ and\na newline.", "v", ('a"b\\c',)).inc('a"b\\c')
    text = registry.render()
    assert "# HELP e_total Help with a \\\\ and\\na newline." in text
    assert 'e_total{v="a\\"b\\\\c"} 1' in text
    assert text.endswith("\n")


def test_every_server_metric_renders_with_help_and_type() -> None:
    samples = parse(Metrics().render())
    names = {name for name, _ in samples}
    assert names == {
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
    }
    assert all(value == 0 for value in samples.values())


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
