"""What a JSON document will cost to parse and walk, measured before it is parsed.

A hostile 1 MiB message of nested or repeated empty lists parses into hundreds of thousands of
Python objects, and walking them for a depth check held the event loop for a third of a second.
`measure` answers the same questions (nesting depth, number of values) from the bytes alone,
with a fixed number of passes that each run in C (`bytes.replace`, `split`, `translate`,
`count`), so refusing such a message costs about as much as copying it.

How: inside a JSON string every backslash escapes the next character, so removing escaped
backslashes and then escaped quotes leaves quotes only at string boundaries; splitting on them
puts string contents at the odd positions. Each string becomes one placeholder byte, so what
is left is the document's structure: brackets, commas, colons and scalars. Depth is the number
of rounds of removing innermost `[]` pairs (braces are turned into brackets first) until
nothing is left, stopping as soon as the limit is passed.

For valid JSON the answers are exact (a reference walk agrees; see the tests). For anything
else they are merely bounded, and the parser refuses it afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass

_DROP_ALL_BUT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_WHITESPACE = b" \t\n\r"
_BRACES_AS_BRACKETS = bytes.maketrans(b"{}", b"[]")


@dataclass(frozen=True, slots=True)
class Cost:
    depth: int  # deepest container nesting (a top-level container is 1; a scalar is 0)
    values: int  # every value: containers and scalars, the root included (keys are not)
    # False when the brackets cannot be JSON's (unbalanced, or closing before opening): the
    # document is refused as unparseable without spending a parse on it.
    well_formed: bool = True

    def exceeds(self, max_depth: int, max_values: int) -> str | None:
        """Which limit this passes, as a message for the client, or None."""
        if not self.well_formed:
            return "Invalid JSON"
        if self.depth > max_depth:
            return f"JSON nested too deeply (at most {max_depth} levels)"
        if self.values > max_values:
            return f"JSON has too many values (at most {max_values})"
        return None


def nesting(brackets: bytes, give_up_after: int) -> int | None:
    """Depth of a bracket-only string, give_up_after + 1 once it is deeper than that, or
    None when the brackets do not nest (a round that removes nothing)."""
    depth = 0
    while brackets:
        if depth > give_up_after:
            return depth
        # A run of n openers is n containers each inside the last: n more rounds at least.
        # One search instead of a round per level refuses a deeply nested document at once
        # (otherwise 16 KiB of nesting costs max_depth rounds over all of it, about 2 ms).
        run = give_up_after + 1 - depth
        if run <= len(brackets) // 2 and b"[" * run in brackets:
            return give_up_after + 1
        shorter = brackets.replace(b"[]", b"")
        if len(shorter) == len(brackets):
            return None
        brackets = shorter
        depth += 1
    return depth


def measure(document: bytes | str, max_depth: int, max_values: int | None = None) -> Cost:
    """Depth (counted up to max_depth + 1) and number of values of a JSON document.

    With `max_values`, a document found to hold more values than that is answered early:
    its depth is then not measured (0) and its count may be a lower bound. Every later pass
    is then bounded by `max_values`, not by the document's size."""
    # surrogatepass: a str that is not valid Unicode is still measured (and refused later).
    raw = document.encode("utf-8", "surrogatepass") if isinstance(document, str) else document
    if b"\\" in raw:
        raw = raw.replace(b"\\\\", b"").replace(b'\\"', b"")
    strings = raw.count(b'"') // 2
    # Every string is a value or an object's key, and every key has a value.
    if max_values is not None and strings > 2 * max_values:
        return Cost(0, (strings + 1) // 2)
    shape = b"0".join(raw.split(b'"')[::2]) if strings else raw
    brackets = shape.translate(None, _DROP_ALL_BUT_BRACKETS).translate(_BRACES_AS_BRACKETS)
    containers = len(brackets) // 2
    if containers == 0:
        return Cost(0, 1, well_formed=not brackets)
    if brackets.count(b"[") * 2 != len(brackets):
        return Cost(0, containers, well_formed=False)
    compact = shape.translate(None, _WHITESPACE).translate(_BRACES_AS_BRACKETS)
    values = 1 + shape.count(b",") + containers - compact.count(b"[]")
    if max_values is not None and values > max_values:
        return Cost(0, values)
    depth = nesting(brackets, max_depth)
    if depth is None:
        return Cost(0, values, well_formed=False)
    return Cost(depth, values)


def refusal(document: bytes | str, max_depth: int, max_values: int) -> str | None:
    """Why a document is too costly to parse (a message for the client), or None."""
    return measure(document, max_depth, max_values).exceeds(max_depth, max_values)
