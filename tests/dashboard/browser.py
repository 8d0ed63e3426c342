"""A real browser for the dashboard's tests: Debian's chromium driven by Playwright.

Playwright's own browser builds are downloaded from outside the package registries, so they
are never used: the tests launch the system chromium (`/usr/bin/chromium`). When it is missing
and we are root (as CI is), the set-up installs Debian's package; otherwise the tests skip
with the reason, and with CI=true they fail instead (tests.needs)."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from pathlib import Path

from tests.needs import missing

CHROMIUM = Path("/usr/bin/chromium")
APT_TIMEOUT_S = 900


@functools.cache
def _install_chromium() -> str | None:
    """Install Debian's chromium as root; the reason it could not be had, or None."""
    if CHROMIUM.exists():
        return None
    apt = shutil.which("apt-get")
    if apt is None or os.geteuid() != 0:
        return f"{CHROMIUM} is missing and apt-get cannot install it here (needs root)"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = [apt, "install", "-y", "--no-install-recommends", "chromium"]
    # A fresh machine has no package lists yet: refresh them once if the first try fails.
    for attempt in range(2):
        done = subprocess.run(
            install,
            capture_output=True,
            text=True,
            timeout=APT_TIMEOUT_S,
            env=env,
            check=False,
        )
        if done.returncode == 0 and CHROMIUM.exists():
            return None
        if attempt == 0:
            subprocess.run(
                [apt, "update"],
                capture_output=True,
                timeout=APT_TIMEOUT_S,
                env=env,
                check=False,
            )
    return f"apt-get install chromium failed: {done.stderr[-1500:]}"


def chromium_path() -> str:
    """The chromium executable, installed if need be; or skip (fail in CI) with the reason."""
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        missing("the playwright package is not installed (it is in the dev extra)")
    reason = _install_chromium()
    if reason is not None:
        missing(reason)
    return str(CHROMIUM)
