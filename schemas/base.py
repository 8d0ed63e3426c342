"""Base models: camelCase on the wire, snake_case in Python.

`WireModel` is for outputs. `InputModel` is strict: unknown fields, wrong types and
coercions are invalid params.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


class WireModel(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        serialize_by_alias=True,
        extra="forbid",
        frozen=True,
    )


class InputModel(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        serialize_by_alias=True,
        extra="forbid",
        strict=True,
        str_strip_whitespace=False,
        frozen=True,
    )


# A hospital id named in an input: checked against the caller's `hospitals` claim by the router.
HospitalId = Annotated[
    str,
    Field(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9_.:-]+$",
        json_schema_extra={"x-scope": "hospital"},
        description="A hospital id; the caller's token must list it.",
    ),
]

# An opaque event id (the position a subscriber resumes from).
EventId = Annotated[str, Field(min_length=1, max_length=128)]
