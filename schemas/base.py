"""Base models: camelCase on the wire, snake_case in Python.

`WireModel` is for outputs. `InputModel` is strict: unknown fields, wrong types and
coercions are invalid params.

Every text field of an input is `PlainText` (one line: a title, a location, an id) or
`FreeText` (what a person writes: a message, a note, a resolution, a reason), or an identifier
with a stricter ASCII pattern of its own (`HospitalId`). Both refuse C0 and C1 control
characters and the Unicode bidirectional overrides and isolates (CONTRACT 5a), which can make
a line display as something other than what it holds; `FreeText` allows newline and tab.
"""

from __future__ import annotations

import re
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


# The refused ranges in the \uXXXX form that Rust's regex (Pydantic's validator, compiled
# once, checked without Python per character), ECMAScript (a client reading the JSON Schema)
# and Python's `re` all read the same way. The check is a pattern rather than a Python
# validator so that length limits stay in the string schema, with their own messages.
_C0_BUT_TAB_AND_NEWLINE = r"\u0000-\u0008\u000b-\u001f"
_DEL_AND_C1 = r"\u007f-\u009f"
_BIDI = r"\u202a-\u202e\u2066-\u2069"
# `$` is the end of the text for Rust and ECMAScript (no multiline flag), so a trailing
# newline does not slip through as it would with Python's `re.match`.
PLAIN_TEXT_PATTERN = rf"^[^\u0000-\u001f{_DEL_AND_C1}{_BIDI}]*$"
FREE_TEXT_PATTERN = rf"^[^{_C0_BUT_TAB_AND_NEWLINE}{_DEL_AND_C1}{_BIDI}]*$"

PlainText = Annotated[str, Field(pattern=PLAIN_TEXT_PATTERN)]
FreeText = Annotated[str, Field(pattern=FREE_TEXT_PATTERN)]

_BIDI_CHAR = re.compile(f"[{_BIDI}]")
_CONTROL_BUT_TAB_AND_NEWLINE = re.compile(f"[{_C0_BUT_TAB_AND_NEWLINE}{_DEL_AND_C1}]")


def refused_text(pattern: str, value: object) -> str | None:
    """Why `PlainText` or `FreeText` refused `value` (the error for a mismatch of `pattern`),
    naming the kind of character and never the value; None for any other pattern."""
    if pattern not in (PLAIN_TEXT_PATTERN, FREE_TEXT_PATTERN) or not isinstance(value, str):
        return None
    if _BIDI_CHAR.search(value):
        return "bidirectional override and isolate characters are not allowed"
    if pattern == FREE_TEXT_PATTERN:
        return "control characters other than newline and tab are not allowed"
    if _CONTROL_BUT_TAB_AND_NEWLINE.search(value):
        return "control characters are not allowed"
    return "line breaks and tabs are not allowed here"


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
EventId = Annotated[PlainText, Field(min_length=1, max_length=128)]
