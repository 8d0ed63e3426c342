"""The JSON Schema -> TypeScript emitter, one construct at a time."""

from __future__ import annotations

from typing import Any

import pytest

from client_gen.collect import identifier, type_names
from client_gen.typescript import TypeScriptEmitter, doc_lines, jsdoc


def ref(name: str) -> str:
    return name.rsplit("/", 1)[-1]


def ts(schema: Any) -> str:
    return TypeScriptEmitter(ref).type_of(schema)


@pytest.mark.parametrize(
    ("schema", "expected"),
    [
        ({"type": "string"}, "string"),
        ({"type": "integer"}, "number"),
        ({"type": "number"}, "number"),
        ({"type": "boolean"}, "boolean"),
        ({"type": "null"}, "null"),
        ({}, "unknown"),
        (True, "unknown"),
        (False, "never"),
        ({"const": "pong"}, '"pong"'),
        ({"const": 3}, "3"),
        ({"enum": ["a", "b"]}, '"a" | "b"'),
        ({"enum": ["a", 1, None, True]}, '"a" | 1 | null | true'),
        ({"type": ["string", "null"]}, "string | null"),
        ({"anyOf": [{"type": "string"}, {"type": "null"}]}, "string | null"),
        ({"anyOf": [{"type": "string"}, {"type": "string"}]}, "string"),
        ({"anyOf": [{"type": "string"}, {}]}, "unknown"),
        ({"oneOf": [{"$ref": "#/$defs/A"}, {"$ref": "#/$defs/B"}]}, "A | B"),
        ({"allOf": [{"$ref": "#/$defs/A"}]}, "A"),
        ({"allOf": [{"$ref": "#/$defs/A"}, {"$ref": "#/$defs/B"}]}, "A & B"),
        ({"type": "array", "items": {"type": "string"}}, "string[]"),
        ({"type": "array"}, "unknown[]"),
        (
            {"type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "null"}]}},
            "(string | null)[]",
        ),
        (
            {"type": "array", "items": {"type": "array", "items": {"type": "integer"}}},
            "number[][]",
        ),
        (
            {
                "type": "array",
                "prefixItems": [{"type": "integer"}, {"type": "string"}],
                "minItems": 2,
                "maxItems": 2,
            },
            "[number, string]",
        ),
        (
            {"type": "array", "prefixItems": [{"type": "integer"}], "items": {"type": "string"}},
            "[number, ...string[]]",
        ),
        ({"type": "object", "additionalProperties": {"type": "number"}}, "Record<string, number>"),
        ({"type": "object"}, "Record<string, unknown>"),
        ({"type": "object", "additionalProperties": False}, "Record<string, never>"),
        (
            {
                "type": "object",
                "additionalProperties": {"type": "integer"},
                "propertyNames": {"enum": ["a", "b"]},
            },
            'Partial<Record<"a" | "b", number>>',
        ),
        (
            {"anyOf": [{"enum": ["a", "b"]}, {"const": "c"}, {"type": "null"}]},
            '"a" | "b" | "c" | null',
        ),
    ],
)
def test_expressions(schema: Any, expected: str) -> None:
    assert ts(schema) == expected


def test_inline_object_keeps_optional_and_nullable_apart() -> None:
    schema = {
        "type": "object",
        "properties": {
            "a": {"type": "string"},
            "b": {"anyOf": [{"type": "string"}, {"type": "null"}]},
            "c": {"type": "string"},
            "d-e": {"type": "integer"},
        },
        "required": ["a", "b"],
    }
    assert ts(schema) == '{\n  a: string;\n  b: string | null;\n  c?: string;\n  "d-e"?: number;\n}'


def test_interface_declaration_with_docs() -> None:
    schema = {
        "type": "object",
        "description": "A thing.\n\nWith two paragraphs.",
        "properties": {
            "n": {"type": "integer", "minimum": 0, "description": "Count."},
            "p": {"anyOf": [{"type": "string", "maxLength": 5}, {"type": "null"}], "default": None},
        },
        "required": ["n"],
        "additionalProperties": False,
    }
    assert TypeScriptEmitter(ref).declaration("Thing", schema) == "\n".join(
        [
            "/**",
            " * A thing.",
            " *",
            " * With two paragraphs.",
            " */",
            "export interface Thing {",
            "  /**",
            "   * Count.",
            "   *",
            "   * @minimum 0",
            "   */",
            "  n: number;",
            "  /**",
            "   * @maxLength 5",
            "   * @default null",
            "   */",
            "  p?: string | null;",
            "}",
        ]
    )


def test_enum_declaration_is_a_closed_union() -> None:
    schema = {"enum": ["low", "high"], "type": "string", "title": "Priority"}
    assert TypeScriptEmitter(ref).declaration("Priority", schema) == (
        'export type Priority = "low" | "high";'
    )


def test_empty_model_is_an_empty_record() -> None:
    schema = {"type": "object", "properties": {}, "additionalProperties": False}
    assert TypeScriptEmitter(ref).declaration("Empty", schema) == (
        "export type Empty = Record<string, never>;"
    )


def test_comment_terminator_is_defused() -> None:
    assert jsdoc(["a */ b"], "") == ["/** a *\\/ b */"]


def test_doc_lines_without_anything() -> None:
    assert doc_lines({"type": "string"}) == []


def test_string_literals_are_escaped() -> None:
    assert ts({"const": 'say "hi"'}) == '"say \\"hi\\""'
    assert ts({"enum": ["a | b"]}) == '"a | b"'
    assert ts({"type": "array", "items": {"enum": ["a | b", "c"]}}) == '("a | b" | "c")[]'


def test_type_names_split_input_and_output() -> None:
    names = type_names({"Foo-Input": {}, "Foo-Output": {}, "Page_Alert_": {}, "mod__Bar": {}})
    assert names == {
        "#/$defs/Foo-Input": "FooInput",
        "#/$defs/Foo-Output": "Foo",
        "#/$defs/Page_Alert_": "PageAlert",
        "#/$defs/mod__Bar": "ModBar",
    }


def test_type_name_collision_is_an_error() -> None:
    with pytest.raises(ValueError, match="FooInput"):
        type_names({"Foo-Input": {}, "FooInput": {}})


def test_identifier_never_starts_with_a_digit() -> None:
    assert identifier("3d") == "T3d"
