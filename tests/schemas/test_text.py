"""PlainText and FreeText (CONTRACT 5a): C0 and C1 controls and the bidirectional overrides
and isolates are refused, newline and tab only in free text, and the message says what kind
of character was refused without quoting the text. Every text field of every input model
carries one of them (or a stricter ASCII pattern)."""

from __future__ import annotations

import inspect
import re
from typing import Any

import pytest
from pydantic import BaseModel, TypeAdapter, ValidationError

from rpc.errors import ErrorCode, RpcError
from rpc.router import Kind, Procedure, field_errors
from schemas import alerts, base, system
from schemas.alerts import CreateAlertInput
from schemas.base import FREE_TEXT_PATTERN, PLAIN_TEXT_PATTERN, FreeText, PlainText

PLAIN: TypeAdapter[str] = TypeAdapter(PlainText)
FREE: TypeAdapter[str] = TypeAdapter(FreeText)

C0 = [chr(c) for c in range(0x20)]
DEL_AND_C1 = [chr(c) for c in range(0x7F, 0xA0)]
BIDI = [chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))]
TAB_AND_NEWLINE = ["\t", "\n"]
# Ordinary text, including the neighbours of each refused range.
ACCEPTED = [
    "Call button, bed 12",
    " ~",  # U+0020 and U+007E, either side of the C0 and DEL ranges
    "\u00a0non-breaking space after C1",
    "Zoë Müller, Ångström, façade",
    "病房 3 号床",
    "Πτώση ασθενούς",
    "ручной вызов",
    "مريض في الغرفة",  # right-to-left script itself is fine; only overrides are refused
    "\u200f\u200e marks, \u2029 and \u2065 \u206a next to the refused ranges",
    "🚨 fall detected 👵🏽",
    "x" * 2000,
]


def refused(adapter: TypeAdapter[str], value: str) -> bool:
    try:
        adapter.validate_python(value)
    except ValidationError:
        return True
    return False


def codes(chars: list[str]) -> list[str]:
    return [f"U+{ord(c):04X}" for c in chars]


@pytest.mark.parametrize("char", C0 + DEL_AND_C1 + BIDI, ids=codes(C0 + DEL_AND_C1 + BIDI))
def test_plain_text_refuses_every_control_and_bidi_character(char: str) -> None:
    for value in (char, f"a{char}", f"{char}b", f"a{char}b"):
        assert refused(PLAIN, value), f"{ord(char):04X} accepted in {value!r}"


refused_free = [c for c in C0 + DEL_AND_C1 + BIDI if c not in TAB_AND_NEWLINE]


@pytest.mark.parametrize("char", refused_free, ids=codes(refused_free))
def test_free_text_refuses_every_control_but_tab_and_newline_and_every_bidi(char: str) -> None:
    for value in (char, f"line one\n{char}", f"{char}\tb", f"a{char}b"):
        assert refused(FREE, value), f"{ord(char):04X} accepted in {value!r}"


def test_newline_and_tab_only_in_free_text() -> None:
    for value in ("line one\nline two", "col\tcol", "ends with a newline\n", "\n", "\t"):
        assert FREE.validate_python(value) == value
        assert refused(PLAIN, value), repr(value)
    assert refused(FREE, "windows\r\nline"), "a carriage return is a control character"


@pytest.mark.parametrize("value", ACCEPTED)
def test_ordinary_unicode_is_accepted_by_both(value: str) -> None:
    assert PLAIN.validate_python(value) == value
    assert FREE.validate_python(value) == value


def test_the_published_pattern_refuses_what_the_validator_refuses() -> None:
    """The JSON Schema pattern (what a TypeScript client can check) and the validation agree."""
    for pattern, adapter in ((PLAIN_TEXT_PATTERN, PLAIN), (FREE_TEXT_PATTERN, FREE)):
        assert adapter.json_schema()["pattern"] == pattern
        # Python's `$` also matches before a final newline; \Z is the ECMAScript `$`.
        python = re.compile(pattern.removesuffix("$") + r"\Z")
        for char in C0 + DEL_AND_C1 + BIDI + ["a", "é", "😀"]:
            assert (python.match(char) is None) == refused(adapter, char), hex(ord(char))


def message_for(field: str, value: str) -> str:
    try:
        CreateAlertInput.model_validate(
            {"hospitalId": "h1", "type": "fall", "priority": "high", "title": "t", field: value}
        )
    except ValidationError as exc:
        return field_errors(exc)[field]
    raise AssertionError(f"{field}={value!r} was accepted")


def test_messages_name_the_kind_of_character_and_never_quote_the_text() -> None:
    secret = "Jane Doe MRN 4471"
    cases = {
        ("title", f"{secret}\u202e"): "bidirectional override and isolate characters",
        ("title", f"{secret}\x00"): "control characters are not allowed",
        ("title", f"{secret}\x85"): "control characters are not allowed",
        ("title", f"{secret}\n"): "line breaks and tabs are not allowed here",
        ("location", f"{secret}\t"): "line breaks and tabs are not allowed here",
        ("message", f"{secret}\u2067"): "bidirectional override and isolate characters",
        ("message", f"{secret}\x1b[2J"): "control characters other than newline and tab",
    }
    for (field, value), expected in cases.items():
        message = message_for(field, value)
        assert expected in message, (field, message)
        assert secret not in message
        assert "\\u" not in message, "the pattern is not quoted at the client"


def test_length_limits_keep_their_own_messages() -> None:
    assert message_for("title", "x" * 201) == "String should have at most 200 characters"
    assert message_for("message", "x" * 2001) == "String should have at most 2000 characters"


def input_models() -> list[type[BaseModel]]:
    found: list[type[BaseModel]] = []
    for module in (alerts, base, system):
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, base.InputModel) and cls is not base.InputModel:
                found.append(cls)
    return found


def test_every_text_field_of_every_input_refuses_controls_and_bidi() -> None:
    """A field added later without PlainText or FreeText fails here."""
    checked: list[str] = []
    for model in input_models():
        for name, info in model.model_fields.items():
            adapter: TypeAdapter[Any] = TypeAdapter(info.rebuild_annotation())
            try:
                adapter.validate_python("a1")
            except ValidationError:
                continue  # not a text field (a number, an enum)
            checked.append(f"{model.__name__}.{name}")
            for char in refused_free:
                assert refused(adapter, f"a{char}1"), (model.__name__, name, hex(ord(char)))
    assert len(checked) >= 15, checked
    assert "CreateAlertInput.title" in checked
    assert "AuthenticateInput.token" in checked


def test_a_refusal_is_bad_request_naming_the_field() -> None:
    async def create(ctx: Any, input: CreateAlertInput) -> None: ...

    proc = Procedure("create", Kind.MUTATION, create, CreateAlertInput, None)
    raw = {"hospitalId": "h1", "type": "fall", "priority": "high", "title": "bed\u202e12"}
    with pytest.raises(RpcError) as caught:
        proc.parse_input(raw)
    assert caught.value.code is ErrorCode.BAD_REQUEST
    assert set(caught.value.data["fieldErrors"]) == {"title"}
