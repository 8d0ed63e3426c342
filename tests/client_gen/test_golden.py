"""The generator's output for the fixture router, compared with the files in golden/.

After an intended change: `UPDATE_GOLDEN=1 pytest tests/client_gen` and review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from client_gen.cli import generate
from tests.client_gen import fixture

GOLDEN = Path(__file__).parent / "golden"
FILES = ["procedures.ts", "router.ts", "schemas.ts"]


@pytest.fixture(scope="module")
def generated() -> dict[str, str]:
    return generate(fixture.router)


@pytest.mark.parametrize("name", FILES)
def test_matches_golden(generated: dict[str, str], name: str) -> None:
    target = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN") == "1":
        target.write_text(generated[name], encoding="utf-8", newline="\n")
    assert target.exists(), f"{target} missing; run with UPDATE_GOLDEN=1"
    assert generated[name] == target.read_text(encoding="utf-8")


def test_writes_exactly_three_files(generated: dict[str, str]) -> None:
    assert sorted(generated) == FILES


def test_deterministic() -> None:
    assert generate(fixture.router) == generate(fixture.router)


def test_input_and_output_shapes_split(generated: dict[str, str]) -> None:
    schemas = generated["schemas.ts"]
    # the validation schema lets `size` be omitted; the serialized model always carries it
    assert "export interface WindowInput {" in schemas
    assert "export interface Window {" in schemas
    assert "  size?: number;" in schemas
    assert "  size: number;" in schemas


def test_optional_and_nullable_kept_apart(generated: dict[str, str]) -> None:
    schemas = generated["schemas.ts"]
    assert "  note?: string | null;" in schemas  # input: has a default
    assert "  reason: string | null;" in schemas  # input: required but nullable
    assert "  note: string | null;" in schemas  # output: always present


def test_tracked_and_untracked_subscriptions(generated: dict[str, str]) -> None:
    router = generated["router.ts"]
    assert (
        "output: AsyncIterable<{ id: string; data: S.Created | S.Deleted | S.Reset }, void, any>;"
        in router
    )
    assert "output: AsyncIterable<number, void, any>;" in router


def test_no_input_is_void(generated: dict[str, str]) -> None:
    assert "input: void;" in generated["router.ts"]


def test_router_outputs_give_one_event_per_subscription(generated: dict[str, str]) -> None:
    # tRPC's inferRouterOutputs gives a subscription's AsyncIterable; RouterOutputs unwraps it
    # (typecheck/fixture-usage.ts checks the resulting types).
    router = generated["router.ts"]
    assert (
        "export type RouterOutputs = Outputs<AppRouter['_def']['record'], "
        "inferRouterOutputs<AppRouter>>;" in router
    )
    assert "? TRecord[K] extends AnyTRPCSubscriptionProcedure" in router
