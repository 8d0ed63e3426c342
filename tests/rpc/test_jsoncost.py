"""rpc.jsoncost: the byte scanner agrees exactly with a walk of the parsed document on any
JSON, however it is spaced or escaped, and stays bounded (never raising) on anything else."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rpc.jsoncost import Cost, measure, nesting, refusal

UNLIMITED = 10**6

# Characters that mean something to the scanner, inside strings as much as outside them.
TRICKY = st.sampled_from([*'"\\[]{},: \t\n/u', "\\u", '\\"', "\u2028", "\U0001f600"])
TEXT = st.lists(st.one_of(TRICKY, st.characters(codec="utf-8")), max_size=12).map("".join)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    TEXT,
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=6), st.dictionaries(TEXT, children, max_size=6)
    ),
    max_leaves=60,
)
WHITESPACE = st.lists(st.sampled_from(["", " ", "\t", "\n", "\r", "  \r\n"]), min_size=1)


def reference(value: Any) -> tuple[int, int]:
    """(depth, values) by walking the parsed value: a top-level container is depth 1 and a
    scalar 0; every value counts, containers included, object keys not."""
    if isinstance(value, dict):
        inner = [reference(v) for v in value.values()]
    elif isinstance(value, list):
        inner = [reference(v) for v in value]
    else:
        return 0, 1
    return 1 + max((d for d, _ in inner), default=0), 1 + sum(n for _, n in inner)


def spaced(value: Any, gaps: list[str]) -> str:
    """`value` as JSON with whitespace from `gaps` (cycled) between every pair of tokens."""
    position = 0

    def gap() -> str:
        nonlocal position
        position += 1
        return gaps[position % len(gaps)]

    def emit(item: Any) -> str:
        if isinstance(item, dict):
            pairs = [gap() + json.dumps(k) + gap() + ":" + emit(v) for k, v in item.items()]
            return "{" + ",".join(pairs) + gap() + "}"
        if isinstance(item, list):
            return "[" + ",".join(emit(v) for v in item) + gap() + "]"
        return gap() + json.dumps(item) + gap()

    return gap() + emit(value) + gap()


def serialisations(value: Any, gaps: list[str]) -> list[bytes | str]:
    return [
        orjson.dumps(value),
        json.dumps(value),
        json.dumps(value, ensure_ascii=False),
        json.dumps(value, indent=2),
        json.dumps(value, indent="\t", separators=(" ,", " : ")),
        json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode(),
        spaced(value, gaps),
    ]


@settings(max_examples=300, deadline=None)
@given(JSON_VALUES, WHITESPACE)
def test_measure_agrees_with_a_walk_of_the_parsed_value(value: Any, gaps: list[str]) -> None:
    depth, values = reference(value)
    for document in serialisations(value, gaps):
        assert orjson.loads(document) == orjson.loads(orjson.dumps(value))  # valid JSON
        assert measure(document, max_depth=UNLIMITED) == Cost(depth, values), document


@settings(max_examples=300, deadline=None)
@given(JSON_VALUES, st.integers(0, 6), st.integers(1, 40))
def test_refusal_is_exactly_the_limits(value: Any, max_depth: int, max_values: int) -> None:
    """With limits, the early answers never let through what the walk would refuse, nor
    refuse what it would let through."""
    depth, values = reference(value)
    expected = depth <= max_depth and values <= max_values
    for document in (orjson.dumps(value), json.dumps(value, indent=1)):
        assert (refusal(document, max_depth, max_values) is None) == expected


@pytest.mark.parametrize("document", ["[[]", "[]]", "][", "]", "[", "{[}", '["]"', "[}}"])
def test_unbalanced_brackets_are_not_well_formed(document: str) -> None:
    cost = measure(document, 32)
    assert not cost.well_formed
    assert cost.exceeds(32, 10_000) == "Invalid JSON"


@pytest.mark.parametrize(
    ("document", "depth", "values"),
    [
        (r'["a\\", "b"]', 1, 3),  # an escaped backslash ends the string before the quote
        (r'["\"]", "["]', 1, 3),  # escaped quotes do not end a string; brackets in it count not
        (r'{"k\\\"]": "\\"}', 1, 2),
        (r'["\\\\\\", [], {}]', 2, 4),
        (r'"\u005d\u005b"', 0, 1),
        ('[" , , [ { "]', 1, 2),
        ("[ ]", 1, 1),
        ("[\n\t]", 1, 1),
        ('{"a": {}, "b": [ {} ,[]]}', 3, 5),
        ("  42  ", 0, 1),
    ],
)
def test_escapes_and_strings_hide_structure(document: str, depth: int, values: int) -> None:
    assert orjson.loads(document) is not None or document.strip() == "null"
    assert measure(document, UNLIMITED) == Cost(depth, values)
    assert measure(document.encode(), UNLIMITED) == Cost(depth, values)


def test_many_strings_are_refused_before_the_structure_is_looked_at() -> None:
    """Past twice max_values strings the answer comes from one count: depth unmeasured (0),
    the value count a lower bound that is already over the limit."""
    document = "[" + ",".join(['"x"'] * 100) + "]"
    cost = measure(document, 32, max_values=10)
    assert cost.depth == 0
    assert 10 < cost.values <= 101
    assert cost.exceeds(32, 10) == "JSON has too many values (at most 10)"


def test_many_values_are_refused_before_the_depth_is_measured() -> None:
    document = "[" + ",".join(["0"] * 100) + "]" + "]" * 5  # also unbalanced: never looked at
    cost = measure("[" * 5 + document, 32, max_values=10)
    assert cost.depth == 0
    assert cost.values > 10
    assert cost.exceeds(32, 10) == "JSON has too many values (at most 10)"


def test_depth_is_counted_only_to_one_past_the_limit() -> None:
    deep = "[" * 10_000 + "]" * 10_000
    assert measure(deep, 10) == Cost(11, 10_000)
    assert measure(deep, UNLIMITED) == Cost(10_000, 10_000)
    assert measure(deep, 10).exceeds(10, 10**6) == "JSON nested too deeply (at most 10 levels)"
    assert nesting(b"[[[]]]", 0) == 1
    assert nesting(b"[[[]]]", 1) == 2
    assert nesting(b"[[[]]]", 3) == 3
    assert nesting(b"][", 3) is None


def test_a_run_of_openers_past_the_limit_answers_at_once() -> None:
    """However the rest nests, max_depth + 1 openers in a row are that deep: the answer is
    the capped depth, also where the brackets would not have nested (refused either way)."""
    wide = "[" + ",".join(["[]"] * 2000) + "," + "[" * 40 + "]" * 40 + "]"
    assert measure(wide, 32) == Cost(33, 2041)
    assert measure(wide, UNLIMITED) == Cost(41, 2041)
    assert nesting(b"]" + b"[" * 40 + b"]" * 39, 32) == 33
    assert nesting(b"]" + b"[" * 40 + b"]" * 39, 100) is None


@pytest.mark.parametrize("document", ['"\ud800"', '["\udfff", "\ud83d"]', "\ud800[", "[\udc00]"])
def test_a_str_with_lone_surrogates_is_measured_not_raised_on(document: str) -> None:
    cost = measure(document, 32, 10_000)
    assert cost.values >= 1


@pytest.mark.parametrize(
    "document",
    [b"\xff\xfe[", b"[\x00]", b'"unterminated', b"[1,]", b"{:}", b"", b"\\", b'\\"[', b"[\\]"],
)
def test_garbage_is_bounded_and_never_raises(document: bytes) -> None:
    cost = measure(document, 32, 10_000)
    assert 0 <= cost.depth <= 33
    assert cost.values >= 0


def test_a_mebibyte_of_hostile_shapes_costs_a_few_passes() -> None:
    """Exact on the shapes the attack used, at the size it used."""
    repeated = b"[" + b"[]," * 349_524 + b"[]]"
    assert measure(repeated, 32) == Cost(2, 349_526)
    nested = b"[" * 524_288 + b"]" * 524_288
    assert measure(nested, 32) == Cost(33, 524_288)
    strings = b"[" + b'"\\"",' * 200_000 + b'""]'
    assert measure(strings, 32, 10_000).exceeds(32, 10_000) is not None
