"""Per-tool authorization (MCP authorization, Scope Challenge Handling): rules, hierarchy,
reading the JSON-RPC body, bad bodies."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from mcp_auth_middleware import MCPAuthMiddleware, ScopeRules
from mcp_auth_middleware.policy import ScopePolicy
from mcp_auth_middleware.testing import LocalIssuer

from .conftest import RESOURCE, asgi_client, bearer, http_scope
from .test_middleware import parse_challenge

Factory = Callable[..., MCPAuthMiddleware]


def call(name: Any, id_: int = 1, **extra: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": id_, "method": "tools/call", "params": {"name": name, "arguments": {}}, **extra}


RULES: dict[str, Any] = {
    "tool_scopes": {"delete_repo": ["repo:delete"], "read_file": ["files:read"]},
    "method_scopes": {"resources/read": ["resources"], "tools/list": []},
    "resource_scopes": {"file:///secret/*": ["secrets"]},
    "prompt_scopes": {"incident": ["oncall"]},
}
RULE_GROUP = ScopeRules(
    tools=RULES["tool_scopes"],
    methods=RULES["method_scopes"],
    resources=RULES["resource_scopes"],
    prompts=RULES["prompt_scopes"],
)


# -- The policy itself --------------------------------------------------------------------


def test_required_for_each_kind_of_message() -> None:
    policy = ScopePolicy(RULE_GROUP)
    assert policy.required_for([call("delete_repo")]) == {"repo:delete"}
    assert policy.required_for([call("anything_else")]) == frozenset()
    read = {"jsonrpc": "2.0", "id": 2, "method": "resources/read", "params": {"uri": "file:///secret/key"}}
    assert policy.required_for([read]) == {"resources", "secrets"}
    prompt = {"jsonrpc": "2.0", "id": 3, "method": "prompts/get", "params": {"name": "incident"}}
    assert policy.required_for([prompt]) == {"oncall"}
    assert policy.required_for([call("delete_repo"), call("read_file")]) == {"repo:delete", "files:read"}


def test_hierarchy_explicit_and_prefix() -> None:
    policy = ScopePolicy(ScopeRules(implied={"admin": ["repo:delete", "files"], "files": ["files:read"]}))
    assert policy.missing(frozenset({"admin"}), frozenset({"files:read", "repo:delete"})) == frozenset()
    assert policy.missing(frozenset({"files"}), frozenset({"repo:delete"})) == {"repo:delete"}
    prefix = ScopePolicy(ScopeRules(prefix_implies=True))
    assert prefix.missing(frozenset({"files"}), frozenset({"files:read", "files:write"})) == frozenset()
    assert prefix.missing(frozenset({"files"}), frozenset({"filesystem:read"})) == {"filesystem:read"}


def test_dynamic_rule() -> None:
    def rule(method: str, params: Any) -> list[str] | None:
        if method == "tools/call" and params and params.get("arguments", {}).get("force"):
            return ["dangerous"]
        return None

    policy = ScopePolicy(ScopeRules(rule=rule))
    forced = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "x", "arguments": {"force": 1}}}
    assert policy.required_for([forced]) == {"dangerous"}
    assert policy.required_for([call("x")]) == frozenset()


# -- Through the middleware ------------------------------------------------------------------


@pytest.fixture
def app(make_app: Factory) -> MCPAuthMiddleware:
    return make_app(required_scopes=["mcp"], **RULES)


async def post(app: MCPAuthMiddleware, token: str, body: bytes | Any, **headers: str) -> Any:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    async with asgi_client(app) as client:
        return await client.post(
            "/mcp", content=content, headers={**bearer(token), "content-type": "application/json", **headers}
        )


async def test_tool_needing_more_gets_403_naming_all_needed(app: MCPAuthMiddleware, issuer: LocalIssuer) -> None:
    token = issuer.mint_token(audience=RESOURCE, scopes=["mcp"])
    response = await post(app, token, call("delete_repo"))
    assert response.status_code == 403
    _, params = parse_challenge(response.headers["www-authenticate"])
    assert params["error"] == "insufficient_scope"
    assert (
        params["scope"] == "mcp repo:delete"
    )  # the operation's scopes, global ones included (MCP authorization, Scope Challenge Handling)
    assert params["resource_metadata"].endswith("/.well-known/oauth-protected-resource/mcp")
    assert params["error_description"]


async def test_allowed_tool_passes_with_body_untouched(app: MCPAuthMiddleware, issuer: LocalIssuer) -> None:
    token = issuer.mint_token(audience=RESOURCE, scopes=["mcp", "repo:delete"])
    raw = b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete_repo","arguments":{"x":"\\u00e9"}}}'
    response = await post(app, token, raw)
    assert response.status_code == 200
    assert response.json()["body"].encode("latin-1") == raw  # byte for byte


async def test_challenge_can_include_granted_scopes(make_app: Factory, issuer: LocalIssuer) -> None:
    app = make_app(required_scopes=["mcp"], challenge_granted_scopes=True, **RULES)
    token = issuer.mint_token(audience=RESOURCE, scopes=["mcp", "files:read"])
    response = await post(app, token, call("delete_repo"))
    assert parse_challenge(response.headers["www-authenticate"])[1]["scope"] == "files:read mcp repo:delete"


async def test_batch_needs_the_union(app: MCPAuthMiddleware, issuer: LocalIssuer) -> None:
    token = issuer.mint_token(audience=RESOURCE, scopes=["mcp", "files:read"])
    response = await post(app, token, [call("read_file", 1), call("delete_repo", 2)])
    assert response.status_code == 403
    assert parse_challenge(response.headers["www-authenticate"])[1]["scope"] == "files:read mcp repo:delete"
    ok = await post(app, token, [call("read_file", 1), call("other", 2)])
    assert ok.status_code == 200


async def test_scopes_supported_lists_every_rule_scope(app: MCPAuthMiddleware) -> None:
    async with asgi_client(app) as client:
        document = (await client.get("/.well-known/oauth-protected-resource/mcp")).json()
    assert set(document["scopes_supported"]) == {"mcp", "repo:delete", "files:read", "resources", "secrets", "oncall"}


async def test_hierarchy_through_the_middleware(make_app: Factory, issuer: LocalIssuer) -> None:
    app = make_app(tool_scopes={"read_file": ["files:read"]}, prefix_implies=True)
    token = issuer.mint_token(audience=RESOURCE, scopes=["files"])
    assert (await post(app, token, call("read_file"))).status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        b"not json at all",
        b'{"jsonrpc": "2.0", "method": "tools/call", "params": {"name": "delete_repo"',  # truncated
        b"\xff\xfe\x00garbage",  # not UTF-8
        b"",
        b"[]",
        b'"a string"',
    ],
)
async def test_not_json_rpc_passes_through_untouched(app: MCPAuthMiddleware, issuer: LocalIssuer, body: bytes) -> None:
    token = issuer.mint_token(audience=RESOURCE, scopes=["mcp"])
    response = await post(app, token, body)
    assert response.status_code == 200
    assert response.json()["body"].encode("latin-1") == body


@pytest.mark.parametrize(
    "message",
    [
        {"jsonrpc": "2.0", "id": 1, "params": {"name": "delete_repo"}},  # no method
        {"jsonrpc": "2.0", "id": 1, "method": 7, "params": {"name": "delete_repo"}},
        {"jsonrpc": "2.0", "id": 1, "method": "tools/call"},  # no params
        {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": "delete_repo"},
        call(["delete_repo"]),
        call(None),
    ],
)
async def test_malformed_json_rpc_is_left_to_the_server(
    app: MCPAuthMiddleware, issuer: LocalIssuer, message: Any
) -> None:
    """No tool can be named by these, so no tool rule applies; the MCP server rejects them."""
    token = issuer.mint_token(audience=RESOURCE, scopes=["mcp"])
    assert (await post(app, token, message)).status_code == 200


async def test_duplicate_members_rejected(app: MCPAuthMiddleware, issuer: LocalIssuer) -> None:
    token = issuer.mint_token(audience=RESOURCE, scopes=["mcp"])
    body = b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete_repo","name":"safe"}}'
    response = await post(app, token, body)
    assert response.status_code == 400
    assert 'error="invalid_request"' in response.headers["www-authenticate"]


async def test_deeply_nested_body_rejected_not_crashed(app: MCPAuthMiddleware, issuer: LocalIssuer) -> None:
    token = issuer.mint_token(audience=RESOURCE, scopes=["mcp"])
    response = await post(app, token, b"[" * 100_000 + b"]" * 100_000)
    assert response.status_code == 400


async def test_oversized_body_413(make_app: Factory, issuer: LocalIssuer) -> None:
    app = make_app(max_body=1000, **RULES)
    token = issuer.mint_token(audience=RESOURCE, scopes=["mcp"])
    response = await post(app, token, call("read_file", arguments={"pad": "x" * 5000}))
    assert response.status_code == 413


async def test_other_content_types_are_still_checked(app: MCPAuthMiddleware, issuer: LocalIssuer) -> None:
    """A server that ignores Content-Type must not let a forbidden call slip through."""
    token = issuer.mint_token(audience=RESOURCE, scopes=["mcp"])
    response = await post(app, token, call("delete_repo"), **{"content-type": "text/plain"})
    assert response.status_code == 403


async def test_slow_chunked_body_is_reassembled(app: MCPAuthMiddleware, issuer: LocalIssuer) -> None:
    token = issuer.mint_token(audience=RESOURCE, scopes=["mcp", "repo:delete"])
    raw = json.dumps(call("delete_repo")).encode()
    chunks = [raw[i : i + 7] for i in range(0, len(raw), 7)]
    messages = [{"type": "http.request", "body": c, "more_body": True} for c in chunks]
    messages[-1]["more_body"] = False
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = http_scope((b"authorization", f"Bearer {token}".encode()), (b"content-type", b"application/json"))
    await app(scope, receive, send)
    assert sent[0]["status"] == 200
    assert json.loads(sent[1]["body"])["body"].encode("latin-1") == raw


async def test_no_rules_never_touches_the_body(make_app: Factory, issuer: LocalIssuer) -> None:
    token = issuer.mint_token(audience=RESOURCE, scopes=["mcp"])
    reads: list[int] = []

    async def app_(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    app = make_app(app=app_)

    async def receive() -> dict[str, Any]:
        reads.append(1)
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        pass

    scope = http_scope((b"authorization", f"Bearer {token}".encode()), (b"content-type", b"application/json"))
    await app(scope, receive, send)
    assert reads == []


async def test_duplicate_spelled_with_escapes_rejected(app: MCPAuthMiddleware, issuer: LocalIssuer) -> None:
    token = issuer.mint_token(audience=RESOURCE, scopes=["mcp"])
    body = b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"safe","\\u006eame":"delete_repo"}}'
    assert (await post(app, token, body)).status_code == 400


async def test_name_inside_arguments_is_not_a_duplicate(app: MCPAuthMiddleware, issuer: LocalIssuer) -> None:
    token = issuer.mint_token(audience=RESOURCE, scopes=["mcp"])
    message = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": "read_file", "arguments": {"name": "x", "uri": "y", "method": "z"}},
    }
    response = await post(app, token, message)
    assert response.status_code == 403  # read_file needs files:read: parsed, not mistaken for a duplicate
