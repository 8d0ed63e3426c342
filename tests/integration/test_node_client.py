"""The TypeScript package: strict type tests against the generated AppRouter (official tRPC
client and Alertwire client), and the Alertwire client's unit tests (node --test, mock server)."""

from __future__ import annotations

import pytest

from tests.client_gen import node_tools

pytestmark = pytest.mark.node


@pytest.fixture(scope="module")
def node() -> str:
    return node_tools.install()


def test_generated_router_type_checks_with_the_official_client(node: str) -> None:
    """typecheck/: correct usage compiles under --strict; each @ts-expect-error is an error."""
    result = node_tools.tsc(node, "-p", "typecheck/tsconfig.json")
    assert result.returncode == 0, result.stdout + result.stderr


def test_client_unit_tests(node: str) -> None:
    node_tools.build(node)
    tests = sorted(str(p) for p in (node_tools.PACKAGE / "dist" / "test").glob("*.test.js"))
    assert tests, "no compiled tests found"
    result = node_tools.run([node, "--test", *tests], timeout=120)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
