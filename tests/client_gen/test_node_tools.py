"""Without Node.js the TypeScript tests skip with the reason, except in CI, where they fail."""

from __future__ import annotations

import re
import shutil

import pytest

from tests.client_gen import node_tools


def test_missing_node_skips_with_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="node and npm not found on PATH"):
        node_tools.require_node()


def test_missing_node_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=re.escape("Node.js 20+ and npm")):
        node_tools.require_node()


def test_an_old_node_is_refused_the_same_way(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: f"/usr/bin/{name}")

    class Old:
        stdout = "v18.19.0\n"

    monkeypatch.setattr(node_tools, "run", lambda *args, **kwargs: Old())
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(
        pytest.skip.Exception, match=re.escape("v18.19.0 found; the TypeScript tests need 20")
    ):
        node_tools.require_node()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=re.escape("v18.19.0")):
        node_tools.require_node()
