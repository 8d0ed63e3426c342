"""The revocation rules a node checks every token against: a user's tokens issued before a
moment (a token without `iat` counts as before), one token by `jti`; rules only widen."""

from __future__ import annotations

import time

from rpc.auth import AuthConfig, issue_token, verify_token
from rpc.context import Principal
from rpc.revocation import RevocationRules, Revocations, TokensRevoked


def principal(sub: str = "u1", iat: float | None = 100.0, jti: str | None = None) -> Principal:
    return Principal(sub, "nurse", frozenset({"h1"}), 10_000.0, issued_at=iat, jti=jti)


def test_a_user_rule_refuses_tokens_issued_before_the_moment_and_those_without_iat() -> None:
    rules = Revocations()
    rules.revoke_subject("u1", 200.0)
    assert rules.refuses(principal(iat=199.0))
    assert rules.refuses(principal(iat=None))
    assert not rules.refuses(principal(iat=200.0))
    assert not rules.refuses(principal(iat=250.0))
    assert not rules.refuses(principal(sub="u2", iat=100.0))


def test_a_jti_rule_refuses_that_token_only() -> None:
    rules = Revocations()
    rules.apply(TokensRevoked(jti="t-1"))
    assert rules.refuses(principal(jti="t-1", iat=1e9))
    assert not rules.refuses(principal(jti="t-2"))
    assert not rules.refuses(principal(jti=None))


def test_rules_only_widen() -> None:
    rules = Revocations()
    rules.revoke_subject("u1", 300.0)
    rules.apply(TokensRevoked(sub="u1", issued_before=100.0))
    rules.merge(RevocationRules({"u1": 50.0}, frozenset()))
    assert rules.refuses(principal(iat=250.0))
    assert len(rules) == 1


def test_verified_tokens_carry_iat_and_jti() -> None:
    config = AuthConfig("s" * 32)
    now = time.time()
    token = issue_token(
        config, sub="u1", role="nurse", hospitals=["h1"], ttl_seconds=60, now=now, jti="abc"
    )
    found = verify_token(token, config)
    assert found.issued_at == int(now)
    assert found.jti == "abc"
    plain = issue_token(config, sub="u1", role="nurse", hospitals=[], ttl_seconds=60, now=now)
    assert verify_token(plain, config).jti is None
