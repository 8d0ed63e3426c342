"""Node.js for the tests of the TypeScript package: find node and npm, install the locked
packages once (`npm ci`, cached in clients/typescript/node_modules), build, run.

Without node or npm the tests skip with the reason; with CI=true they fail instead.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.needs import missing

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "clients" / "typescript"
STAMP = PACKAGE / "node_modules" / ".alertwire-lock-sha256"
NPM_CI_TIMEOUT_S = 600


def require_node() -> tuple[str, str]:
    """Paths of node and npm, or skip (fail in CI) with the reason."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        absent = " and ".join(n for n, p in (("node", node), ("npm", npm)) if p is None)
        missing(f"{absent} not found on PATH; the TypeScript tests need Node.js 20+ and npm")
    version = run([node, "--version"], check=True).stdout.strip()
    if int(version.lstrip("v").split(".")[0]) < 20:
        missing(f"Node.js {version} found; the TypeScript tests need 20+")
    return node, npm


def install() -> str:
    """`npm ci` unless node_modules already matches package-lock.json; returns node's path."""
    node, npm = require_node()
    lock = PACKAGE / "package-lock.json"
    digest = hashlib.sha256(lock.read_bytes()).hexdigest()
    if not STAMP.exists() or STAMP.read_text() != digest:
        result = run([npm, "ci", "--no-audit", "--no-fund"], timeout=NPM_CI_TIMEOUT_S)
        if result.returncode != 0:
            pytest.fail(f"npm ci failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
        STAMP.write_text(digest)
    return node


def tsc(node: str, *args: str) -> subprocess.CompletedProcess[str]:
    return run([node, str(PACKAGE / "node_modules" / "typescript" / "bin" / "tsc"), *args])


def build(node: str) -> None:
    result = tsc(node, "-p", "tsconfig.json")
    assert result.returncode == 0, f"tsc build failed:\n{result.stdout}{result.stderr}"


def run(
    args: list[str],
    *,
    check: bool = False,
    timeout: float = 300,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args,
        cwd=PACKAGE,
        capture_output=True,
        text=True,
        check=check,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )
