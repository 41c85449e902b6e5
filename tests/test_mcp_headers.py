"""MCP 2026-07-28 request headers against the body (Streamable HTTP transport, SEP-2243): a
gateway may decide from `Mcp-Method`/`Mcp-Name` alone only because the server refuses a
request whose headers and body disagree (400, JSON-RPC error -32020), before any scope decision."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import httpx2
import pytest

from mcp_auth_middleware import MCPAuthMiddleware
from mcp_auth_middleware.mcp_headers import HeaderMismatchError, check_mcp_headers, decode_header, headers_are_checked
from mcp_auth_middleware.testing import LocalIssuer

from .conftest import RESOURCE, asgi_client, bearer

Factory = Callable[..., MCPAuthMiddleware]


def call(name: str, method: str = "tools/call", key: str = "name") -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": 7, "method": method, "params": {key: name, "arguments": {}}}


def b64(text: str) -> bytes:
    return f"=?base64?{base64.b64encode(text.encode()).decode()}?=".encode()


@pytest.mark.parametrize(
    ("method", "name", "message"),
    [
        (b"tools/call", b"whoami", call("whoami")),
        (b" tools/call\t", b"  whoami ", call("whoami")),  # optional whitespace trimmed (RFC 9110 §5.5)
        (b"tools/call", b64("délete notes"), call("délete notes")),  # the base64 form, UTF-8
        (b"resources/read", b"file:///notes/1", call("file:///notes/1", "resources/read", "uri")),
        (b"prompts/get", b"incident", call("incident", "prompts/get")),
        (b"tools/list", None, {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
        (None, b"whoami", call("whoami")),  # Mcp-Name alone still has to agree
    ],
)
def test_headers_that_agree_with_the_body_pass(method: bytes | None, name: bytes | None, message: Any) -> None:
    check_mcp_headers(method, name, [message])


@pytest.mark.parametrize(
    ("method", "name", "message", "why"),
    [
        (b"tools/call", b"whoami", call("delete_notes"), "Mcp-Name header does not match the request body's name"),
        (b"tools/list", None, call("whoami"), "Mcp-Method header does not match"),
        (b"TOOLS/CALL", b"whoami", call("whoami"), "Mcp-Method header does not match"),  # values are case-sensitive
        (b"tools/call", b"WhoAmI", call("whoami"), "Mcp-Name header does not match"),
        (b"tools/list", b"whoami", {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, "names nothing"),
        (b"tools/call", None, call("whoami"), "Mcp-Name header is missing for tools/call"),
        (b"tools/call", b"=?base64?!!!?=", call("whoami"), "malformed base64 form"),
        (b"tools/call", b"=?base64?d2hvYW1p=?=", call("whoami"), "malformed base64 form"),  # not canonical
        (b"tools/call", b"whoami", None, "not one JSON-RPC message"),
    ],
)
def test_headers_that_disagree_are_refused(method: bytes | None, name: bytes | None, message: Any, why: str) -> None:
    with pytest.raises(HeaderMismatchError, match=why):
        check_mcp_headers(method, name, None if message is None else [message])


def test_a_batch_cannot_be_described_by_one_method() -> None:
    with pytest.raises(HeaderMismatchError, match="not one JSON-RPC message"):
        check_mcp_headers(b"tools/call", b"a", [call("a"), call("a")])


def test_decode_header() -> None:
    assert decode_header(b"plain") == "plain"
    assert decode_header(b64("caf\u00e9")) == "caf\u00e9"
    assert decode_header("caf\u00e9".encode()) is None  # raw non-ASCII bytes: not a valid value


async def test_the_middleware_refuses_a_mismatch_with_400_before_any_scope_decision(
    make_app: Factory, issuer: LocalIssuer
) -> None:
    app = make_app(tool_scopes={"delete_notes": ["notes:delete"]})
    token = issuer.mint_token(audience=RESOURCE, scopes=["mcp"])  # lacks notes:delete
    headers = {**bearer(token), "Mcp-Method": "tools/call", "Mcp-Name": "whoami", "content-type": "application/json"}
    async with asgi_client(app) as client:
        lying = await client.post("/mcp", content=json.dumps(call("delete_notes")), headers=headers)
        honest = await client.post(
            "/mcp", content=json.dumps(call("delete_notes")), headers={**headers, "Mcp-Name": "delete_notes"}
        )
        allowed = await client.post("/mcp", content=json.dumps(call("whoami")), headers=headers)
    # The gateway in front would have decided for `whoami`: refused, not a 403 for delete_notes.
    assert lying.status_code == 400 and "www-authenticate" not in lying.headers
    assert lying.json() == {
        "jsonrpc": "2.0",
        "id": 7,
        "error": {"code": -32020, "message": "The Mcp-Name header does not match the request body's name"},
    }
    assert honest.status_code == 403  # agreeing headers: the scope decision as without them
    assert allowed.status_code == 200


async def test_without_the_headers_the_body_decides_as_before(make_app: Factory, issuer: LocalIssuer) -> None:
    app = make_app()  # no per-tool rules: the body is not even read
    token = issuer.mint_token(audience=RESOURCE, scopes=["mcp"])
    async with asgi_client(app) as client:
        plain = await client.post("/mcp", json=call("anything"), headers=bearer(token))
        mismatched = await client.post(
            "/mcp", json=call("anything"), headers={**bearer(token), "mcp-method": "prompts/get"}
        )
    assert plain.status_code == 200
    assert mismatched.status_code == 400 and mismatched.json()["error"]["code"] == -32020


async def test_a_request_without_a_token_is_challenged_first(make_app: Factory) -> None:
    """The body is read only for an authenticated caller."""
    async with asgi_client(make_app()) as client:
        answer = await client.post("/mcp", json=call("x"), headers={"mcp-method": "tools/list"})
    assert answer.status_code == 401


def test_header_names_are_case_insensitive_on_a_real_server(make_app: Factory, issuer: LocalIssuer) -> None:
    """RFC 9110 §5.1: `MCP-METHOD` is `Mcp-Method` (uvicorn gives ASGI apps lowercase names)."""
    from mcp_auth_middleware.testing import free_port, serve

    port = free_port()
    resource = f"http://127.0.0.1:{port}/mcp"
    app = MCPAuthMiddleware(
        make_app().app, resource=resource, authorization_servers=[issuer.issuer], validator=issuer.validator()
    )
    token = issuer.mint_token(audience=resource, scopes=["mcp"])
    with serve(app, port=port):
        answer = httpx2.post(
            resource, json=call("whoami"), headers={**bearer(token), "MCP-METHOD": "tools/call", "MCP-NAME": "x"}
        )
    assert answer.status_code == 400 and answer.json()["error"]["code"] == -32020


@pytest.mark.parametrize(
    ("versions", "checked"),
    [
        ([b"2026-07-28"], True),
        ([b" 2026-07-28\t"], True),
        ([b"2027-01-15"], True),  # later versions keep the rule
        ([b"2025-11-25"], False),
        ([b"2025-06-18"], False),
        ([], False),  # none: the server assumes 2025-03-26
        ([b"2025-11-25", b"2026-07-28"], False),  # two: servers disagree on which counts
        ([b"2026-07-28", b"2026-07-28"], False),
        ([b"2026-07-28, 2025-11-25"], False),
        ([b"draft"], False),
        ([b"9999-99-99x"], False),
    ],
)
def test_headers_are_trusted_only_where_the_server_must_check_them(versions: list[bytes], checked: bool) -> None:
    """MCP 2026-07-28, Streamable HTTP: the server checks Mcp-Method and Mcp-Name against the
    body; one on an older version (or unsure which) never reads them."""
    assert headers_are_checked(versions) is checked
