"""Properties of the validators: tokens, JWKS documents, introspection responses, audiences.

Never an unhandled exception, never a positive result for a mutated token. The default
profile keeps CI fast; `HYPOTHESIS_PROFILE=long pytest tests/validators/test_properties.py` runs many more.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from mcp_auth_middleware import AuthorizationServerUnavailableError, InvalidTokenError, JWTValidator
from mcp_auth_middleware.testing import LocalIssuer
from mcp_auth_middleware.urls import canonical_uri
from mcp_auth_middleware.validators.introspection import IntrospectionValidator
from mcp_auth_middleware.validators.jwks import import_keys

settings.register_profile("ci", max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("long", max_examples=5000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

ISS = "https://as.example"
AUD = "https://mcp.example.com/mcp"
ISSUER = LocalIssuer(ISS)
GOOD = ISSUER.mint_token(audience=AUD, sub="alice", scopes=["mcp"], expires_in=3600)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def fresh_validator() -> JWTValidator:
    return ISSUER.validator(audience=AUD)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


@given(position=st.integers(0, len(GOOD) - 1), replacement=st.characters(codec="ascii"))
def test_any_single_character_change_is_rejected(position: int, replacement: str) -> None:
    mutated = GOOD[:position] + replacement + GOOD[position + 1 :]
    if mutated == GOOD:
        return
    try:
        info = run(fresh_validator().validate(mutated))
    except InvalidTokenError:
        return
    # The only change that may survive is one base64 can absorb: the spare bits of the last
    # signature character decode to the same bytes. Then the token is the same token.
    assert position == len(GOOD) - 1 and b64decode(mutated.rsplit(".", 1)[1]) == b64decode(GOOD.rsplit(".", 1)[1])
    assert info.sub == "alice"


header_, payload_, signature_ = GOOD.split(".")
HEADER, CLAIMS = json.loads(b64decode(header_)), json.loads(b64decode(payload_))
INTROSPECTION = IntrospectionValidator("https://as.example/introspect", client_id="rs", client_secret="s", audience=AUD)


@given(key=st.sampled_from(["alg", "kid", "typ", "crit", "jku", "jwk", "x5u", "b64", "cty", "zip"]), value=json_values)
def test_mutated_header_with_the_original_signature_is_rejected(key: str, value: Any) -> None:
    header = {**HEADER, key: value}
    if header == HEADER:
        return
    token = f"{b64(json.dumps(header).encode())}.{payload_}.{signature_}"
    with pytest.raises(InvalidTokenError):
        run(fresh_validator().validate(token))


@given(
    key=st.sampled_from(["iss", "aud", "exp", "nbf", "iat", "sub", "scope", "client_id", "extra"]), value=json_values
)
def test_mutated_claims_with_the_original_signature_are_rejected(key: str, value: Any) -> None:
    claims = {**CLAIMS, key: value}
    if claims == CLAIMS:
        return
    token = f"{header_}.{b64(json.dumps(claims).encode())}.{signature_}"
    with pytest.raises(InvalidTokenError):
        run(fresh_validator().validate(token))


@given(key=st.sampled_from(["iss", "aud", "exp", "nbf", "iat", "sub", "scope", "client_id", "scp"]), value=json_values)
@example(key="exp", value=-9_223_372_036_854_775_809)  # found by hypothesis: beyond the platform's time_t
@example(key="exp", value=-1e300)
def test_validly_signed_odd_claims_never_crash(key: str, value: Any) -> None:
    """Signed by the real key, so only the claim rules decide: a clean answer either way."""
    token = ISSUER.mint_token(audience=AUD, **{key: value})
    try:
        info = run(fresh_validator().validate(token))
    except InvalidTokenError:
        return
    assert info.issuer == ISS and AUD in info.audience
    assert isinstance(info.expires_at, int) and info.expires_at > time.time()


@given(document=json_values)
def test_any_jwks_document_imports_or_is_ignored(document: Any) -> None:
    try:
        keys = import_keys({"keys": document if isinstance(document, list) else [document]})
    except (ValueError, TypeError):
        return
    assert all(k.key_type in ("RSA", "EC", "OKP") for k in keys)


@given(document=json_values)
def test_any_introspection_response_is_judged_without_crashing(document: Any) -> None:
    result = INTROSPECTION._judge(document)
    if result.info is not None:
        assert isinstance(document, dict) and document.get("active") is True
        assert document.get("aud") == AUD or AUD in document.get("aud", [])


@given(
    answer=st.dictionaries(
        st.sampled_from(["active", "aud", "exp", "nbf", "scope", "token_type", "iss", "sub"]), json_values, max_size=8
    )
)
def test_introspection_positive_only_for_true_active_and_our_audience(answer: dict[str, Any]) -> None:
    info = INTROSPECTION._judge(answer).info
    if info is not None:
        assert answer["active"] is True
        assert answer.get("aud") in (AUD, [AUD]) or (isinstance(answer.get("aud"), list) and AUD in answer["aud"])
        exp = answer.get("exp")
        assert exp is None or (isinstance(exp, int | float) and not isinstance(exp, bool) and exp > time.time() - 60)


async def test_unavailable_error_type_is_distinct() -> None:
    assert not issubclass(AuthorizationServerUnavailableError, InvalidTokenError)


@given(
    st.one_of(
        st.builds(
            lambda scheme, host, port, path: f"{scheme}://{host}{port}{path}",
            st.sampled_from(["https", "HTTPS", "http", "Http", "api", "urn"]),
            st.from_regex(r"[A-Za-z0-9.\-]{1,20}|\[::1\]|u@[a-z]{1,5}", fullmatch=True),
            st.sampled_from(["", ":443", ":80", ":8443", ":0", ":99999"]),
            st.from_regex(r"(/[A-Za-z0-9%._~\-]{0,8}){0,3}/?(\?[a-z=&]{0,8})?(#[a-z]{0,4})?", fullmatch=True),
        ),
        st.text(max_size=40),
    )
)
def test_canonical_uri_is_idempotent(value: str) -> None:
    """The audience check compares `aud` with the canonical audiences before canonicalising it:
    sound only because a canonical URI is its own canonical form (MCP authorization, Canonical Server URI)."""
    once = canonical_uri(value)
    assert canonical_uri(once) == once
