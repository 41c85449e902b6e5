"""Properties of the request path: whatever a client sends, the answer is a well-formed
400/401/403 or a pass (the token-level properties are in tests/validators/test_properties.py)."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mcp_auth_middleware import MCPAuthMiddleware
from mcp_auth_middleware.testing import LocalIssuer

from .conftest import ISSUER, RESOURCE, echo_app, http_scope

ISSUER_KEYS = LocalIssuer(ISSUER)
APP = MCPAuthMiddleware(
    echo_app(),
    resource=RESOURCE,
    authorization_servers=[ISSUER],
    validator=ISSUER_KEYS.validator(),
    required_scopes=["mcp"],
    failure_limit=None,
)  # the guard has its own tests; here every answer is a 400/401
GOOD = ISSUER_KEYS.mint_token(audience=RESOURCE, scopes=["mcp"])
# RFC 6750 §3: auth-param values are quoted strings without raw quotes, backslashes or CR/LF.
CHALLENGE = re.compile(r'^Bearer( [a-z_]+="[\x20\x21\x23-\x5b\x5d-\x7e]*",?)*$')

header_bytes = st.binary(max_size=300).filter(lambda b: b"\r" not in b and b"\n" not in b)
auth_values = st.one_of(
    header_bytes,
    st.builds(
        lambda s, t: s + b" " + t,
        st.sampled_from([b"Bearer", b"bearer", b"BEARER", b"Basic", b"DPoP", b""]),
        header_bytes,
    ),
    st.builds(lambda t: b"Bearer " + t, st.text(max_size=200).map(lambda s: s.encode("utf-8", "replace"))),
    st.builds(
        lambda i, c: b"Bearer " + GOOD[:i].encode() + c + GOOD[i + 1 :].encode(),
        st.integers(0, len(GOOD) - 1),
        st.binary(min_size=0, max_size=3),
    ),
)


def call(headers: list[tuple[bytes, bytes]], path: str = "/mcp", query: bytes = b"") -> dict[str, Any]:
    scope = http_scope(*headers, path=path) | {"query_string": query}
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(APP(scope, receive, send))
    start = sent[0]
    return {
        "status": start["status"],
        "headers": dict(start["headers"]),
        "body": b"".join(m.get("body", b"") for m in sent[1:]),
    }


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values=st.lists(auth_values, min_size=0, max_size=3))
def test_any_authorization_header_gets_a_well_formed_answer(values: list[bytes]) -> None:
    response = call([(b"authorization", v) for v in values])
    status = response["status"]
    if status == 200:
        # Only the one genuine token may pass, alone and byte-exact (scheme aside).
        assert len(values) == 1 and values[0].split(b" ", 1)[-1].strip(b" ") == GOOD.encode()
        return
    assert status in (400, 401), status
    challenge = response["headers"][b"www-authenticate"].decode("latin-1")
    assert CHALLENGE.match(challenge), challenge
    assert "resource_metadata=" in challenge
    body = json.loads(response["body"])
    assert body["error"] in ("invalid_request", "invalid_token", "unauthorized")
    for value in values:  # never echoed back
        token = value.split(b" ", 1)[-1]
        if len(token) >= 20:  # shorter ones may coincide with our own fixed wording ("invalid_")
            assert token not in response["body"] and token not in response["headers"][b"www-authenticate"]


@settings(max_examples=100, deadline=None)
@given(path=st.text(max_size=60).map(lambda p: "/" + p), query=st.binary(max_size=80))
def test_any_path_and_query_never_crash(path: str, query: bytes) -> None:
    response = call([(b"authorization", f"Bearer {GOOD}".encode())], path=path, query=query)
    assert response["status"] in (200, 400, 404, 405)
