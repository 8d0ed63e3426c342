"""Walk a router and gather the JSON schemas of every procedure's input and output.

All schemas come from one `TypeAdapter.json_schemas` call, so a model reachable from several
procedures is defined once. Inputs use Pydantic's validation schema and outputs its
serialization schema; when a model's two schemas differ Pydantic names them `Foo-Input` and
`Foo-Output`, which become the TypeScript types `FooInput` and `Foo`.

Outputs: the server dumps every field (no `exclude_unset`/`exclude_none`), so in the
serialization schema a field with a default is still required: it is always on the wire.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import TypeAdapter
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaMode
from pydantic_core import core_schema

from rpc.router import Kind, Procedure

REF_PREFIX = "#/$defs/"
LAST_EVENT_ID = "lastEventId"


class WireJsonSchema(GenerateJsonSchema):
    """Pydantic's generator, with every serialized field marked required (see module doc)."""

    def field_is_required(
        self,
        field: core_schema.ModelField | core_schema.DataclassField | core_schema.TypedDictField,
        total: bool,
    ) -> bool:
        if self.mode == "serialization":
            return not field.get("serialization_exclude")
        return super().field_is_required(field, total)


@dataclass(frozen=True, slots=True)
class ProcedureSchema:
    path: str
    kind: Kind
    tracked: bool
    description: str
    input: dict[str, Any] | None  # None: the procedure takes no input
    output: dict[str, Any]  # for subscriptions: one event
    resumable: bool  # the input has a `lastEventId` a client fills in to resume

    @property
    def segments(self) -> list[str]:
        return self.path.split(".")


@dataclass(slots=True)
class Api:
    procedures: list[ProcedureSchema]
    definitions: dict[str, dict[str, Any]]  # TypeScript name -> schema
    ref_names: dict[str, str] = field(default_factory=dict)  # "$ref" -> TypeScript name

    def ref_name(self, ref: str) -> str:
        try:
            return self.ref_names[ref]
        except KeyError:
            raise ValueError(f"unresolved schema reference {ref!r}") from None


def collect(procedures: Iterable[Procedure]) -> Api:
    procs = sorted(procedures, key=lambda p: p.path)
    inputs: list[tuple[tuple[str, str], JsonSchemaMode, TypeAdapter[Any]]] = []
    for proc in procs:
        if proc.input_model is not None:
            inputs.append(((proc.path, "input"), "validation", TypeAdapter(proc.input_model)))
        inputs.append(((proc.path, "output"), "serialization", proc.output_adapter))
    by_key, top = TypeAdapter.json_schemas(
        inputs, by_alias=True, ref_template=REF_PREFIX + "{model}", schema_generator=WireJsonSchema
    )
    defs: dict[str, dict[str, Any]] = top.get("$defs", {})
    ref_names = type_names(defs)
    resolved = {ref_names[REF_PREFIX + key]: schema for key, schema in defs.items()}
    result = [
        ProcedureSchema(
            path=proc.path,
            kind=proc.kind,
            tracked=proc.tracked,
            description=proc.description,
            input=by_key.get(((proc.path, "input"), "validation")),
            output=by_key[((proc.path, "output"), "serialization")],
            resumable=_accepts(proc, LAST_EVENT_ID),
        )
        for proc in procs
    ]
    return Api(procedures=result, definitions=dict(sorted(resolved.items())), ref_names=ref_names)


def type_names(defs: Mapping[str, Any]) -> dict[str, str]:
    """`$ref` -> TypeScript name: `Foo-Input` -> `FooInput`, `Foo-Output` -> `Foo`."""
    names: dict[str, str] = {}
    owners: dict[str, str] = {}
    for key in sorted(defs):
        base = key
        suffix = ""
        if key.endswith("-Input"):
            base, suffix = key[: -len("-Input")], "Input"
        elif key.endswith("-Output"):
            base = key[: -len("-Output")]
        name = identifier(base) + suffix
        if name in owners:
            raise ValueError(
                f"schemas {owners[name]!r} and {key!r} would both be called {name!r} in "
                "TypeScript; rename one of the models"
            )
        owners[name] = key
        names[REF_PREFIX + key] = name
    return names


def identifier(name: str) -> str:
    """A Pydantic definition name (`Page_Alert_`, `mod__Foo`) as a PascalCase identifier."""
    parts = [p for p in re.split(r"[^A-Za-z0-9]+", name) if p]
    text = "".join(p[:1].upper() + p[1:] for p in parts) or "Anonymous"
    return f"T{text}" if text[0].isdigit() else text


def _accepts(proc: Procedure, name: str) -> bool:
    if proc.input_model is None:
        return False
    schema = proc.input_model.model_json_schema(by_alias=True, mode="validation")
    return name in schema.get("properties", {})
