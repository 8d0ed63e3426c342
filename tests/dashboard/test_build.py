"""The committed dashboard build (dashboard/static) is what its sources build to: the test
installs the locked tools (`npm ci` in dashboard/, once), type-checks with `tsc --strict`,
builds into a temporary folder and compares. Needs Node.js 20+ and npm (skips without them,
fails in CI)."""

from __future__ import annotations

import hashlib
import re
import subprocess
from pathlib import Path

import pytest

from dashboard import STATIC_DIR
from tests.client_gen.node_tools import require_node

pytestmark = pytest.mark.node

PACKAGE = STATIC_DIR.parent
STAMP = PACKAGE / "node_modules" / ".alertwire-lock-sha256"
FIX = "rebuild it: ./run dashboard (or `npm ci && npm run build` in dashboard/) and commit"


def run(args: list[str], timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=PACKAGE, capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture(scope="module")
def node() -> str:
    node, npm = require_node()
    digest = hashlib.sha256((PACKAGE / "package-lock.json").read_bytes()).hexdigest()
    if not STAMP.exists() or STAMP.read_text() != digest:
        done = run([npm, "ci", "--no-audit", "--no-fund"])
        assert done.returncode == 0, f"npm ci failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
        STAMP.write_text(digest)
    return node


def files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_the_sources_type_check_strictly(node: str) -> None:
    done = run([node, "node_modules/typescript/bin/tsc", "-p", "tsconfig.json"])
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_committed_build_is_current(node: str, tmp_path: Path) -> None:
    done = run([node, "build.mjs", "--out", str(tmp_path)])
    assert done.returncode == 0, done.stdout + done.stderr
    fresh, committed = files(tmp_path), files(STATIC_DIR)
    assert sorted(fresh) == sorted(committed), f"dashboard/static is stale: {FIX}"
    stale = [name for name in fresh if fresh[name] != committed[name]]
    assert stale == [], f"dashboard/static is stale ({', '.join(stale)}): {FIX}"


def test_the_page_has_no_inline_script_or_style() -> None:
    page = (STATIC_DIR / "index.html").read_text()
    assert page.count("<script") == 1
    assert 'src="/assets/app.' in page
    assert "style=" not in page
    assert "<style" not in page
    assert re.search(r"\son[a-z]+=", page) is None  # no inline event handlers
