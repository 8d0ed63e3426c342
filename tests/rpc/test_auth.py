"""rpc.auth on its own: leeway, pinned algorithms, and that nothing but TokenError escapes."""

from __future__ import annotations

import contextlib
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rpc.auth import AuthConfig, TokenError, bearer_token, verify_token
from rpc.context import Principal
from tests.conftest import SECRET
from tests.rpc.test_forged_tokens import HS, claims, craft, hs256


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"exp": -3}, None),  # within the 5 s leeway
        ({"exp": -10}, "Token expired"),
        ({"nbf": 3}, None),
        ({"nbf": 10}, "Token not yet valid"),
    ],
)
def test_exp_and_nbf_get_at_most_five_seconds_of_leeway(
    change: dict[str, int], message: str | None
) -> None:
    now = int(time.time())
    token = hs256(claims(HS, **{k: now + v for k, v in change.items()}))
    if message is None:
        assert verify_token(token, HS).sub == "nurse-1"
    else:
        with pytest.raises(TokenError) as refused:
            verify_token(token, HS)
        assert refused.value.message == message


def test_algorithm_families_cannot_be_mixed() -> None:
    with pytest.raises(ValueError, match="either HMAC or public-key"):
        AuthConfig("key", ("HS256", "RS256"))
    with pytest.raises(ValueError, match="unsupported"):
        AuthConfig("key", ("none",))
    with pytest.raises(ValueError):
        AuthConfig("key", ())


@pytest.mark.parametrize(
    ("claim", "value"),
    [("sub", ""), ("role", "superuser"), ("hospitals", "h1"), ("hospitals", [""]), ("exp", True)],
)
def test_claims_of_the_wrong_shape_are_refused(claim: str, value: Any) -> None:
    with pytest.raises(TokenError) as refused:
        verify_token(hs256(claims(**{claim: value})), HS)
    assert refused.value.code.name == "UNAUTHORIZED"


def test_oversized_tokens_are_refused_before_decoding() -> None:
    with pytest.raises(TokenError) as refused:
        verify_token("a" * 9000, HS)
    assert refused.value.reason == "too_large"


def test_bearer_header_parsing() -> None:
    assert bearer_token("Bearer abc") == "abc"
    assert bearer_token("bearer  abc ") == "abc"
    assert bearer_token("Basic abc") is None
    assert bearer_token("Bearer ") is None
    assert bearer_token(None) is None


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=10,
)
claim_sets = st.dictionaries(
    st.sampled_from(["sub", "role", "hospitals", "exp", "nbf", "iat", "iss", "aud", "name"]),
    json_values,
)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_any_string_is_a_principal_or_a_token_error(text: str) -> None:
    with contextlib.suppress(TokenError):
        verify_token(text, HS)


@settings(max_examples=300, deadline=None)
@given(claim_sets, st.sampled_from(["HS256", "none", "RS256", "hs256", ""]))
def test_any_signed_claims_are_a_principal_or_a_token_error(
    payload: dict[str, Any], alg: str
) -> None:
    token = craft({"alg": alg, "typ": "JWT"}, payload, SECRET.encode())
    with contextlib.suppress(TokenError):
        assert isinstance(verify_token(token, AuthConfig(SECRET)), Principal)
