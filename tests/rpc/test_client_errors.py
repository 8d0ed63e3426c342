"""ClientErrorLog: the first report of a (kind, address) per window is logged, the rest are
counted and told on the next window's first line; keys are independent; memory is bounded;
every report is counted; nothing carries a traceback. The clock is injected."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from rpc.client_errors import MAX_ADDRESS_CHARS, ClientErrorLog
from rpc.metrics import Metrics


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    @property
    def messages(self) -> list[str]:
        return [r.getMessage() for r in self.records]


@pytest.fixture
def lines() -> Iterator[Lines]:
    handler = Lines()
    logger = logging.getLogger("tests.client_errors")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


@pytest.fixture
def clock() -> Clock:
    return Clock()


def make(clock: Clock, max_keys: int = 10_000) -> ClientErrorLog:
    return ClientErrorLog(logging.getLogger("tests.client_errors"), 10.0, clock, max_keys)


def test_the_first_is_logged_and_the_rest_of_the_window_suppressed(
    clock: Clock, lines: Lines
) -> None:
    log = make(clock)
    for step in range(100):
        clock.now = 1000.0 + step * 0.099  # all inside the first 10 s
        log.report("bad_frame", "10.0.0.1", "invalid JSON")
    assert lines.messages == ["bad_frame from 10.0.0.1: invalid JSON"]


def test_the_suppressed_count_is_told_when_the_next_window_opens(
    clock: Clock, lines: Lines
) -> None:
    log = make(clock)
    for _ in range(5):
        log.report("bad_frame", "10.0.0.1", "invalid JSON")
    clock.now += 9.999
    log.report("bad_frame", "10.0.0.1", "invalid JSON")  # still the first window
    clock.now += 0.001
    log.report("bad_frame", "10.0.0.1", "invalid JSON")
    clock.now += 5
    log.report("bad_frame", "10.0.0.1", "invalid JSON")
    clock.now += 30
    log.report("bad_frame", "10.0.0.1", "invalid JSON")
    clock.now += 30
    log.report("bad_frame", "10.0.0.1", "invalid JSON")
    assert lines.messages == [
        "bad_frame from 10.0.0.1: invalid JSON",
        "bad_frame from 10.0.0.1: invalid JSON (5 similar suppressed)",
        "bad_frame from 10.0.0.1: invalid JSON (1 similar suppressed)",
        "bad_frame from 10.0.0.1: invalid JSON",
    ]


def test_kinds_and_addresses_are_throttled_independently(clock: Clock, lines: Lines) -> None:
    log = make(clock)
    for _ in range(3):
        log.report("bad_frame", "10.0.0.1", "invalid JSON")
        log.report("bad_frame", "10.0.0.2", "invalid JSON")
        log.report("too_large", "10.0.0.1", "body over the limit")
    assert lines.messages == [
        "bad_frame from 10.0.0.1: invalid JSON",
        "bad_frame from 10.0.0.2: invalid JSON",
        "too_large from 10.0.0.1: body over the limit",
    ]


def test_keys_are_bounded_and_the_least_recently_reported_go_first(
    clock: Clock, lines: Lines
) -> None:
    log = make(clock, max_keys=3)
    log.report("bad_http", "busy", "malformed HTTP")
    for n in range(50):
        log.report("bad_http", f"10.0.1.{n}", "malformed HTTP")
        log.report("bad_http", "busy", "malformed HTTP")  # reported often: kept
        assert len(log) <= 3
    assert lines.messages.count("bad_http from busy: malformed HTTP") == 1
    log.report("bad_http", "10.0.1.0", "malformed HTTP")  # forgotten long ago: logged again
    assert lines.messages[-1] == "bad_http from 10.0.1.0: malformed HTTP"


def test_quiet_keys_are_forgotten_once_their_window_is_over(clock: Clock, lines: Lines) -> None:
    log = make(clock)
    for n in range(100):
        log.report("timeout", f"10.0.2.{n}", "headers not in time")
    assert len(log) == 100
    clock.now += 10
    log.report("timeout", "10.0.3.1", "headers not in time")
    assert len(log) == 1


def test_a_key_with_an_untold_count_is_kept_past_its_window(clock: Clock, lines: Lines) -> None:
    log = make(clock)
    log.report("origin", "10.0.0.9", "origin not allowed")
    log.report("origin", "10.0.0.9", "origin not allowed")
    clock.now += 60
    log.report("origin", "10.0.0.10", "origin not allowed")
    clock.now += 60
    log.report("origin", "10.0.0.9", "origin not allowed")
    assert lines.messages[-1] == "origin from 10.0.0.9: origin not allowed (1 similar suppressed)"


def test_every_report_is_counted_logged_or_not(clock: Clock, lines: Lines) -> None:
    metrics = Metrics()
    log = make(clock)
    log.count = metrics.client_errors.inc
    for _ in range(7):
        log.report("bad_http", "10.0.0.1", "malformed HTTP")
    log.report("no_such_kind", "10.0.0.1", "something")
    assert len(lines.records) == 2
    assert metrics.client_errors.get("bad_http") == 7
    assert metrics.client_errors.get("other") == 1


def test_lines_are_info_without_a_traceback_even_inside_an_except(
    clock: Clock, lines: Lines
) -> None:
    log = make(clock)
    try:
        raise ValueError("a parser's complaint quoting the request")
    except ValueError:
        log.report("bad_frame", "10.0.0.1", "invalid JSON")
    (record,) = lines.records
    assert record.levelno == logging.INFO
    assert record.exc_info is None
    assert "quoting" not in record.getMessage()


def test_a_long_address_is_cut_and_counts_as_one_key(clock: Clock, lines: Lines) -> None:
    log = make(clock)
    for tail in ("a", "b", "c"):
        log.report("auth", "x" * 500 + tail, "token refused")
    assert len(lines.records) == 1
    assert lines.messages[0] == f"auth from {'x' * MAX_ADDRESS_CHARS}: token refused"


def test_nonsense_settings_are_refused() -> None:
    logger = logging.getLogger("tests.client_errors")
    with pytest.raises(ValueError):
        ClientErrorLog(logger, window_s=0)
    with pytest.raises(ValueError):
        ClientErrorLog(logger, max_keys=0)
