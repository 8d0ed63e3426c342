"""MAX_CONNECTIONS is fitted under the open-file limit at start-up."""

from __future__ import annotations

import pytest

from rpc.limits import Limits
from server.files import FD_RESERVE, fit_to_file_limit


def test_the_soft_limit_is_raised_to_the_hard_one_and_the_cap_kept_when_it_fits() -> None:
    calls: list[tuple[int, int]] = []
    fitted = fit_to_file_limit(Limits(max_connections=10_000), lambda: (1024, 65536), calls.append)
    assert calls == [(65536, 65536)]
    assert fitted.max_connections == 10_000


def test_a_cap_beyond_the_limit_is_lowered_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    fitted = fit_to_file_limit(Limits(max_connections=20_100), lambda: (20_000, 20_000), print)
    assert fitted.max_connections == 20_000 - FD_RESERVE - 2000 - 1000  # beside the pools
    assert (fitted.max_http_connections, fitted.max_unauthenticated_connections) == (2000, 1000)
    assert "does not fit the open-file limit" in caplog.text


def test_when_the_soft_limit_cannot_be_raised_the_soft_limit_counts() -> None:
    def refuse(limits: tuple[int, int]) -> None:
        raise ValueError("not allowed")

    limits = Limits(max_connections=10_000, max_http_connections=100)
    fitted = fit_to_file_limit(limits, lambda: (4096, 65536), refuse)
    assert fitted.max_connections == 4096 - FD_RESERVE - 100 - 1000


def test_no_cap_and_an_unlimited_file_limit_are_left_alone() -> None:
    assert (
        fit_to_file_limit(Limits(max_connections=0), lambda: (100, 100), print).max_connections == 0
    )
    unlimited = fit_to_file_limit(Limits(max_connections=10**6), lambda: (-1, -1), print)
    assert unlimited.max_connections == 10**6
