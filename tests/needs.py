"""What a test needs from the machine (Node.js, PostgreSQL, ...): without it the test skips
with the reason, except in CI (CI=true), where a missing service is a failure, not a pass."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def missing(reason: str) -> NoReturn:
    """Skip the test with `reason`; fail it in CI."""
    if in_ci():
        pytest.fail(reason)
    pytest.skip(reason)
