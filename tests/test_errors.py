"""errors.py: what a denial says in the log, and how it is classified."""

from __future__ import annotations

import pytest

from mcp_auth_middleware.errors import ConfigurationError, InvalidTokenError, mismatch_hint, shown


@pytest.mark.parametrize(
    ("expected", "found", "hint"),
    [
        ("https://auth.example.com/", "https://auth.example.com", "differ only in a trailing slash"),
        ("http://auth.example.com", "https://auth.example.com", "differ in scheme: http vs https"),
        ("http://localhost:9000", "http://127.0.0.1:9000", "localhost and 127.0.0.1 are different names"),
        ("https://auth.example.com", "https://evil.example", ""),
        ("https://auth.example.com", None, ""),
    ],
)
def test_mismatch_hint_says_what_differs(expected: str, found: object, hint: str) -> None:
    assert (hint in mismatch_hint(expected, found)) if hint else mismatch_hint(expected, found) == ""


def test_shown_keeps_log_lines_single_and_short() -> None:
    assert shown("a\nb") == "'a\\nb'"
    assert len(shown("x" * 1000)) == 120 and shown("x" * 1000).endswith("...")


def test_classification() -> None:
    assert InvalidTokenError().guess and not InvalidTokenError().mismatch
    assert not InvalidTokenError(guess=False).guess
    misconfigured = ConfigurationError("issuer differs")
    assert (misconfigured.status, misconfigured.error, misconfigured.detail) == (
        503,
        "server_misconfigured",
        "issuer differs",
    )
    assert misconfigured.mismatch
