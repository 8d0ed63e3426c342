"""JSON Schema, as Pydantic writes it, to TypeScript type expressions and declarations.

Generic: knows nothing of routers or of Alertwire. References (`$ref`) are turned into type
names by a callable the caller supplies, so the same emitter serves `schemas.ts` (bare names)
and `router.ts` (names qualified by the `S.` namespace import).

Mapping, in brief: `const`/`enum` -> literal unions; `anyOf`/`oneOf` (discriminated or not) ->
unions; `allOf` -> intersection; objects with `properties` -> object types where a property is
optional (`?`) exactly when it is not `required`, and nullable (`| null`) exactly when its schema
admits null; `additionalProperties` -> `Record<string, T>`; `prefixItems` -> tuples; anything
the emitter cannot express -> `unknown`. Descriptions and validation keywords become JSDoc.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

JsonSchema = Mapping[str, Any] | bool

# Binding strength of a type expression, to know when it needs parentheses.
UNION, INTERSECTION, ATOM = 0, 1, 2

IDENTIFIER = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$]*$")

# Keywords copied into JSDoc as `@keyword value`, in this order.
CONSTRAINTS = (
    "format",
    "minimum",
    "exclusiveMinimum",
    "maximum",
    "exclusiveMaximum",
    "multipleOf",
    "minLength",
    "maxLength",
    "pattern",
    "minItems",
    "maxItems",
    "uniqueItems",
    "minProperties",
    "maxProperties",
)

PRIMITIVES = {
    "string": "string",
    "integer": "number",
    "number": "number",
    "boolean": "boolean",
    "null": "null",
}


@dataclass(frozen=True, slots=True)
class TsType:
    text: str
    precedence: int

    def at_least(self, precedence: int) -> str:
        return self.text if self.precedence >= precedence else f"({self.text})"


def literal(value: Any) -> str:
    """A JSON value as a TypeScript literal type."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def property_key(name: str) -> str:
    return name if IDENTIFIER.match(name) else json.dumps(name, ensure_ascii=False)


def jsdoc(lines: Iterable[str], indent: str) -> list[str]:
    """A JSDoc block; `*/` inside the text is defused."""
    body = [line.replace("*/", "*\\/").rstrip() for line in lines]
    while body and not body[-1]:
        body.pop()
    if not body:
        return []
    if len(body) == 1:
        return [f"{indent}/** {body[0]} */"]
    return [
        f"{indent}/**",
        *(f"{indent} *{' ' + line if line else ''}" for line in body),
        f"{indent} */",
    ]


def doc_lines(schema: JsonSchema) -> list[str]:
    """Description, then validation keywords, default and deprecation, for a JSDoc block."""
    if not isinstance(schema, Mapping):
        return []
    lines: list[str] = []
    description = schema.get("description")
    if isinstance(description, str) and description.strip():
        lines.extend(description.strip().splitlines())
    tags: list[str] = []
    for source in _constraint_sources(schema):
        for keyword in CONSTRAINTS:
            if keyword in source:
                tags.append(f"@{keyword} {_tag_value(source[keyword])}")
    if "default" in schema:
        tags.append(f"@default {literal(schema['default'])}")
    if schema.get("deprecated") is True:
        tags.append("@deprecated")
    if lines and tags:
        lines.append("")
    return lines + tags


def _tag_value(value: Any) -> str:
    return value if isinstance(value, str) else literal(value)


def _constraint_sources(schema: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The schema itself, or for `X | null` the non-null member (where Pydantic puts them)."""
    members = schema.get("anyOf")
    if isinstance(members, list):
        non_null = [m for m in members if not (isinstance(m, Mapping) and m.get("type") == "null")]
        if len(non_null) == 1 and isinstance(non_null[0], Mapping):
            return [non_null[0]]
        return []
    return [schema]


def union(types: Iterable[TsType]) -> TsType:
    seen: list[str] = []
    for item in types:
        if item.text == "never":
            continue
        for part in _union_parts(item):
            if part not in seen:
                seen.append(part)
    if not seen:
        return TsType("never", ATOM)
    if "unknown" in seen:
        return TsType("unknown", ATOM)
    if len(seen) == 1:
        return TsType(seen[0], _precedence_of_part(seen[0]))
    return TsType(" | ".join(seen), UNION)


def _union_parts(item: TsType) -> list[str]:
    if item.precedence != UNION:
        return [item.text]
    return _split_top_level(item.text, " | ")


def _split_top_level(text: str, separator: str) -> list[str]:
    parts: list[str] = []
    depth, start, i = 0, 0, 0
    in_string = False
    while i < len(text):
        char = text[i]
        if in_string:
            if char == "\\":
                i += 1
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "([{<":
            depth += 1
        elif char in ")]}>":
            depth -= 1
        elif depth == 0 and text.startswith(separator, i):
            parts.append(text[start:i])
            i += len(separator)
            start = i
            continue
        i += 1
    parts.append(text[start:])
    return parts


def _precedence_of_part(text: str) -> int:
    if len(_split_top_level(text, " | ")) > 1:
        return UNION
    if len(_split_top_level(text, " & ")) > 1:
        return INTERSECTION
    return ATOM


class TypeScriptEmitter:
    """Turns schemas into TypeScript. `ref_name` maps a `$ref` string to a type name."""

    def __init__(self, ref_name: Callable[[str], str], indent: str = "  ") -> None:
        self.ref_name = ref_name
        self.indent = indent

    # --- expressions -----------------------------------------------------------------------

    def type_of(self, schema: JsonSchema, depth: int = 0) -> str:
        return self._type(schema, depth).text

    def _type(self, schema: JsonSchema, depth: int) -> TsType:
        if schema is True:
            return TsType("unknown", ATOM)
        if schema is False:
            return TsType("never", ATOM)
        if "$ref" in schema:
            return TsType(self.ref_name(str(schema["$ref"])), ATOM)
        if "const" in schema:
            return TsType(literal(schema["const"]), ATOM)
        if "enum" in schema:
            return union(TsType(literal(v), ATOM) for v in schema["enum"])
        for keyword in ("anyOf", "oneOf"):
            if keyword in schema:
                return union(self._type(member, depth) for member in schema[keyword])
        if "allOf" in schema:
            return self._intersection([self._type(m, depth) for m in schema["allOf"]])
        kind = schema.get("type")
        if isinstance(kind, list):
            return union(self._type({**schema, "type": k}, depth) for k in kind)
        if kind in PRIMITIVES:
            return TsType(PRIMITIVES[str(kind)], ATOM)
        if kind == "array":
            return self._array(schema, depth)
        if kind == "object" or "properties" in schema:
            return self._object(schema, depth)
        return TsType("unknown", ATOM)

    def _intersection(self, members: list[TsType]) -> TsType:
        texts = [m.at_least(INTERSECTION) for m in members if m.text != "unknown"]
        texts = list(dict.fromkeys(texts))
        if not texts:
            return TsType("unknown", ATOM)
        if len(texts) == 1:
            return TsType(texts[0], _precedence_of_part(texts[0]))
        return TsType(" & ".join(texts), INTERSECTION)

    def _array(self, schema: Mapping[str, Any], depth: int) -> TsType:
        prefix = schema.get("prefixItems")
        items = schema.get("items", True)
        if isinstance(prefix, list):
            elements = [self._type(m, depth).text for m in prefix]
            if items is not False and not (
                isinstance(schema.get("maxItems"), int) and schema["maxItems"] <= len(prefix)
            ):
                elements.append(f"...{self._type(items, depth).at_least(ATOM)}[]")
            return TsType(f"[{', '.join(elements)}]", ATOM)
        return TsType(f"{self._type(items, depth).at_least(ATOM)}[]", ATOM)

    def _object(self, schema: Mapping[str, Any], depth: int) -> TsType:
        properties = schema.get("properties")
        extra = schema.get("additionalProperties", True)
        if not properties:
            if extra is False:
                return TsType("Record<string, never>", ATOM)
            value = self._type(extra, depth).text
            keys = schema.get("propertyNames")
            if isinstance(keys, Mapping) and ("enum" in keys or "const" in keys):
                return TsType(f"Partial<Record<{self._type(keys, depth).text}, {value}>>", ATOM)
            return TsType(f"Record<string, {value}>", ATOM)
        lines = self.members(schema, depth + 1)
        pad = self.indent * depth
        body = "\n".join(lines)
        return TsType(f"{{\n{body}\n{pad}}}", ATOM)

    def members(self, schema: Mapping[str, Any], depth: int) -> list[str]:
        """The lines of an object type's body, each property with its JSDoc."""
        pad = self.indent * depth
        required = set(schema.get("required", ()))
        lines: list[str] = []
        for name, prop in schema.get("properties", {}).items():
            lines.extend(jsdoc(doc_lines(prop), pad))
            readonly = "readonly " if isinstance(prop, Mapping) and prop.get("readOnly") else ""
            optional = "" if name in required else "?"
            lines.append(
                f"{pad}{readonly}{property_key(name)}{optional}: {self.type_of(prop, depth)};"
            )
        extra = schema.get("additionalProperties", False)
        if extra is not False:
            lines.append(f"{pad}[key: string]: unknown;")
        return lines

    # --- declarations ----------------------------------------------------------------------

    def declaration(self, name: str, schema: JsonSchema) -> str:
        """`export interface Name {...}` for models, `export type Name = ...;` otherwise."""
        head = jsdoc(doc_lines(schema), "") if isinstance(schema, Mapping) else []
        if isinstance(schema, Mapping) and schema.get("properties") and not _is_composite(schema):
            body = "\n".join(self.members(schema, 1))
            return "\n".join([*head, f"export interface {name} {{", body, "}"])
        return "\n".join([*head, f"export type {name} = {self.type_of(schema)};"])


def _is_composite(schema: Mapping[str, Any]) -> bool:
    return any(k in schema for k in ("$ref", "anyOf", "oneOf", "allOf", "enum", "const"))
