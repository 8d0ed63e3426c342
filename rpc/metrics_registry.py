"""Bounded metrics over prometheus_client: every label's values are declared, anything else is
counted as "other". A thin layer, so that the transport's call sites stay `inc`, `dec`, `set`
and `get`, and so that each server has a CollectorRegistry of its own (tests run many servers
in one process)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, disable_created_metrics, generate_latest
from prometheus_client import Counter as _PromCounter
from prometheus_client import Gauge as _PromGauge
from prometheus_client import Histogram as _PromHistogram

# Process-wide switch of prometheus_client: the `_created` series (a counter's creation time)
# double the exposition and no alerting rule here uses them.
disable_created_metrics()  # type: ignore[no-untyped-call]

OTHER = "other"


class _Bounded:
    """A prometheus_client metric whose label values are each kept to a declared set."""

    def __init__(self, metric: Any, labels: Sequence[str], allowed: Sequence[Iterable[str]]):
        if len(labels) != len(allowed):
            raise ValueError(f"{metric}: every label needs its set of values")
        self._metric = metric
        self._labels = tuple(labels)
        self._allowed = [frozenset(values) for values in allowed]
        self._children: dict[tuple[str, ...], Any] = {}

    def declare(self, label: str, values: Iterable[str]) -> None:
        """Widen one label's set (procedure paths, known once the router is)."""
        index = self._labels.index(label)
        self._allowed[index] = self._allowed[index] | frozenset(values)

    def child(self, *values: str | None) -> Any:
        """The series for these label values, each outside its set counted as "other"."""
        key = tuple(
            value if value in allowed else OTHER
            for value, allowed in zip(values, self._allowed, strict=True)
        )
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self._metric.labels(*key) if key else self._metric
        return child

    def _samples(self) -> list[tuple[dict[str, str], float]]:
        return [
            (sample.labels, sample.value)
            for family in self._metric.collect()
            for sample in family.samples
        ]

    def get(self, value: str | None = None) -> float:
        """The current value of one series (tests and health views, not the hot path)."""
        want = dict(zip(self._labels, self._key(value), strict=True))
        return sum(v for labels, v in self._samples() if labels == want)

    def total(self) -> float:
        return sum(value for _, value in self._samples())

    def _key(self, value: str | None) -> tuple[str, ...]:
        if not self._labels:
            return ()
        return (value if value in self._allowed[0] else OTHER,)


class Counter(_Bounded):
    def inc(self, value: str | None = None, amount: float = 1.0) -> None:
        if amount < 0:
            raise ValueError("a counter only goes up")
        self.child(*self._key(value)).inc(amount)


class Gauge(_Bounded):
    def inc(self, value: str | None = None, amount: float = 1.0) -> None:
        self.child(*self._key(value)).inc(amount)

    def dec(self, value: str | None = None, amount: float = 1.0) -> None:
        self.child(*self._key(value)).dec(amount)

    def set(self, amount: float, value: str | None = None) -> None:
        self.child(*self._key(value)).set(amount)


class Histogram(_Bounded):
    def observe(self, seconds: float) -> None:
        """For a histogram without labels."""
        self._metric.observe(seconds)


class Registry:
    """A CollectorRegistry of bounded metrics. Single-label metrics show every declared value
    from the start (at 0); "other" appears once something landed there."""

    def __init__(self) -> None:
        self.collectors = CollectorRegistry(auto_describe=True)

    def _labels(
        self, name: str, label: str | None, values: Iterable[str]
    ) -> tuple[list[str], list[tuple[str, ...]]]:
        allowed = tuple(values)
        if label is None and allowed:
            raise ValueError(f"{name}: label values without a label name")
        if label is not None and not allowed:
            raise ValueError(f"{name}: a label needs its set of values")
        return ([label] if label else []), ([allowed] if label else [])

    def counter(
        self, name: str, help: str, label: str | None = None, values: Iterable[str] = ()
    ) -> Counter:
        labels, allowed = self._labels(name, label, values)
        metric = Counter(
            _PromCounter(name, help, labels, registry=self.collectors), labels, allowed
        )
        for value in allowed[0] if allowed else ("",):
            metric.child(*((value,) if labels else ()))
        return metric

    def gauge(
        self, name: str, help: str, label: str | None = None, values: Iterable[str] = ()
    ) -> Gauge:
        labels, allowed = self._labels(name, label, values)
        metric = Gauge(_PromGauge(name, help, labels, registry=self.collectors), labels, allowed)
        for value in allowed[0] if allowed else ("",):
            metric.child(*((value,) if labels else ()))
        return metric

    def labelled_counter(
        self, name: str, help: str, labels: Mapping[str, Iterable[str]]
    ) -> Counter:
        """Several labels: series appear as they are first used."""
        prom = _PromCounter(name, help, list(labels), registry=self.collectors)
        return Counter(prom, list(labels), list(labels.values()))

    def labelled_gauge(self, name: str, help: str, labels: Mapping[str, Iterable[str]]) -> Gauge:
        prom = _PromGauge(name, help, list(labels), registry=self.collectors)
        return Gauge(prom, list(labels), list(labels.values()))

    def histogram(
        self,
        name: str,
        help: str,
        buckets: Sequence[float],
        labels: Mapping[str, Iterable[str]] | None = None,
    ) -> Histogram:
        labels = labels or {}
        prom = _PromHistogram(name, help, list(labels), registry=self.collectors, buckets=buckets)
        return Histogram(prom, list(labels), list(labels.values()))

    def render(self) -> str:
        return generate_latest(self.collectors).decode()
