"""Reading the bearer token (RFC 6750 §2.1, §3) and refusing it outside the header (RFC 6750
§2.2, §3.1; OAuth 2.1 §5.1)."""

from __future__ import annotations

import pytest

from mcp_auth_middleware.credentials import (
    bearer_token,
    check_token_syntax,
    form_holds_token,
    is_form,
    query_holds_token,
    token_text,
)
from mcp_auth_middleware.errors import InvalidTokenError


@pytest.mark.parametrize(
    "authorization",
    [b"Bearer abc", b"bearer abc", b"BEARER abc", b"bEaReR abc", b"Bearer   abc", b"Bearer abc  "],
)
def test_scheme_case_insensitive_and_spaces_around_token(authorization: bytes) -> None:
    assert bearer_token(authorization, 100) == b"abc"


@pytest.mark.parametrize("authorization", [None, b"Basic dXNlcjpwYXNz", b"DPoP abc", b"Bearerabc", b""])
def test_no_bearer_credentials_is_none(authorization: bytes | None) -> None:
    assert bearer_token(authorization, 100) is None


@pytest.mark.parametrize("authorization", [b"Bearer", b"Bearer ", b"Bearer    ", b"bearer " + b"a" * 101])
def test_empty_or_overlong_bearer_value_is_invalid(authorization: bytes) -> None:
    with pytest.raises(InvalidTokenError):
        bearer_token(authorization, 100)


def test_max_length_is_inclusive() -> None:
    assert bearer_token(b"Bearer " + b"a" * 100, 100) == b"a" * 100


@pytest.mark.parametrize("token", [b"a b", b"caf\xc3\xa9", b" a"])
def test_token_text_refuses_spaces_and_non_ascii(token: bytes) -> None:
    with pytest.raises(InvalidTokenError):
        token_text(token)


def test_token_text_is_the_ascii_token() -> None:
    assert token_text(b"eyJ.abc-_~+/=") == "eyJ.abc-_~+/="


@pytest.mark.parametrize("token", ["abc\tdef", "abc,def", 'abc"def', "abc\\def", "abc\x00", "é"])
def test_check_token_syntax_refuses_non_b64token(token: str) -> None:
    with pytest.raises(InvalidTokenError):
        check_token_syntax(token)


def test_check_token_syntax_accepts_b64token() -> None:
    check_token_syntax("AZaz09-._~+/==")


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        (b"application/x-www-form-urlencoded", True),
        (b"Application/X-WWW-Form-Urlencoded; charset=utf-8", True),
        (b"application/json", False),
        (b"multipart/form-data; boundary=x", False),
    ],
)
def test_is_form(content_type: bytes, expected: bool) -> None:
    assert is_form(content_type) is expected


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (b"access_token=abc", True),
        (b"a=1&access_token=", True),
        (b"access%5Ftoken=abc", True),  # RFC 6750 §2.3; OAuth 2.1 §5.1: percent-encoding does not hide the key
        (b"%61ccess_token=abc", True),
        (b"x=access_token", False),  # only the key counts
        (b"access_tokens=abc", False),
        (b"a=1&b=%20", False),
        (b"", False),
    ],
)
def test_query_holds_token(query: bytes, expected: bool) -> None:
    assert query_holds_token(query) is expected


def test_form_holds_token() -> None:
    assert form_holds_token(b"grant=x&access_token=abc")
    assert not form_holds_token(b"grant=x")


def test_scan_headers_reads_the_four_it_needs_in_one_pass() -> None:
    from mcp_auth_middleware.credentials import scan_headers

    headers = [
        (b"host", b"mcp.example.com"),
        (b"authorization", b"Bearer t"),
        (b"content-type", b"application/x-www-form-urlencoded; charset=utf-8"),
        (b"origin", b"https://app.example"),
        (b"dpop", b"proof"),
        (b"accept", b"application/json"),
        (b"mcp-method", b"tools/call"),
        (b"mcp-name", b"whoami"),
    ]
    assert scan_headers(headers) == (
        b"Bearer t",
        True,
        b"https://app.example",
        b"proof",
        None,
        b"tools/call",
        b"whoami",
    )
    assert scan_headers([(b"content-type", b"application/json")]) == (None, False, None, None, None, None, None)


@pytest.mark.parametrize(
    ("headers", "problem"),
    [
        ([(b"authorization", b"Bearer a"), (b"authorization", b"Bearer b")], "more than one Authorization header"),
        ([(b"content-type", b"application/json"), (b"content-type", b"text/plain")], "more than one Content-Type"),
        ([(b"x-h", b"v")] * 201, "too many headers"),
        ([(b"mcp-method", b"tools/call"), (b"mcp-method", b"tools/list")], "more than one Mcp-Method header"),
        ([(b"mcp-name", b"a"), (b"mcp-name", b"b")], "more than one Mcp-Name header"),
    ],
)
def test_scan_headers_names_what_makes_a_request_malformed(headers: list[tuple[bytes, bytes]], problem: str) -> None:
    from mcp_auth_middleware.credentials import scan_headers

    found = scan_headers(headers)[4]
    assert found is not None and problem in found


def test_two_origins_or_two_proofs_stand_for_themselves() -> None:
    """Two Origins match no allowed origin; two DPoP headers are an invalid proof (RFC 9449 §4.3)."""
    from mcp_auth_middleware.credentials import CONFLICTING_ORIGINS, REPEATED_PROOFS, scan_headers

    scanned = scan_headers([(b"origin", b"https://a"), (b"origin", b"https://b"), (b"dpop", b"x"), (b"dpop", b"y")])
    assert scanned[2] is CONFLICTING_ORIGINS and scanned[3] is REPEATED_PROOFS and scanned[4] is None
