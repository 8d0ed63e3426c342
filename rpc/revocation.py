"""Which tokens are revoked before they expire (CONTRACT 11, `admin.revokeTokens`).

Two kinds of rule: every token of a user issued before a moment (`iat` earlier than it; a token
without `iat` counts as issued before anything), and one token by its `jti`. A node keeps the
rules in memory, so the check on every handshake, request and `auth.authenticate` is a dict
lookup; the durable copy is in the store (services/revocations.py) and the other nodes hear of
a new rule through the cluster broadcast (`TokensRevoked`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from rpc.cluster import ClusterMessage
from rpc.context import Principal


class TokensRevoked(ClusterMessage):
    """A new rule: `sub` with `issued_before` (unix seconds), or `jti`."""

    kind = "tokens.revoked"
    sub: str | None = None
    issued_before: float | None = None
    jti: str | None = None


@dataclass(frozen=True, slots=True)
class RevocationRules:
    """What the store holds: a snapshot to load at start (and reload as a backstop)."""

    subjects: Mapping[str, float]  # sub -> tokens issued before this are refused
    tokens: frozenset[str]  # jtis


class Revocations:
    def __init__(self) -> None:
        self._subjects: dict[str, float] = {}
        self._tokens: set[str] = set()

    def __len__(self) -> int:
        return len(self._subjects) + len(self._tokens)

    def refuses(self, principal: Principal) -> bool:
        if principal.jti is not None and principal.jti in self._tokens:
            return True
        before = self._subjects.get(principal.sub)
        if before is None:
            return False
        return principal.issued_at is None or principal.issued_at < before

    def revoke_subject(self, sub: str, issued_before: float) -> None:
        """Rules only ever widen: an older moment never undoes a later one."""
        if issued_before > self._subjects.get(sub, float("-inf")):
            self._subjects[sub] = issued_before

    def revoke_tokens(self, jtis: Iterable[str]) -> None:
        self._tokens.update(jtis)

    def apply(self, message: TokensRevoked) -> None:
        if message.sub is not None and message.issued_before is not None:
            self.revoke_subject(message.sub, message.issued_before)
        if message.jti is not None:
            self.revoke_tokens((message.jti,))

    def merge(self, rules: RevocationRules) -> None:
        for sub, before in rules.subjects.items():
            self.revoke_subject(sub, before)
        self.revoke_tokens(rules.tokens)
