"""A hostile client against real nginx and Caddy (configured as docs/gateways.md shows) in
front of FastMCP and the MCP SDK's `MCPServer`: per-tool rules dodged by naming an older
protocol version, the metadata route used as a second check endpoint, a refused origin's
preflight, identity headers with underscores, a service that hangs, and the connections the
gateway keeps to the service."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from mcp_auth_middleware.testing import free_port, serve

from .conftest import (
    CALLS,
    UPSTREAM_REQUESTS,
    GatewayStack,
    caddy,
    gateway_stack,
    modern_call,
    nginx,
    tool_result,
    upstream_app,
)

pytestmark = pytest.mark.end_to_end

STACKS = [("nginx", "fastmcp"), ("nginx", "mcp-sdk"), ("caddy", "fastmcp"), ("caddy", "mcp-sdk")]


@pytest.fixture(scope="module", params=STACKS, ids=["-".join(s) for s in STACKS])
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayStack]:
    gateway, upstream = request.param
    with gateway_stack(gateway, tmp_path_factory.mktemp(gateway), upstream) as running:
        yield running


def legacy_call(tool: str) -> str:
    """A tools/call body as clients before 2026-07-28 send it (no per-request envelope)."""
    return json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": tool, "arguments": {}}})


ACCEPT = [("Accept", "application/json, text/event-stream"), ("Content-Type", "application/json")]
#: Headers that name `whoami` (or nothing) over a body that calls delete_notes.
DODGES = {
    "2025-11-25": [("MCP-Protocol-Version", "2025-11-25"), ("Mcp-Method", "tools/call"), ("Mcp-Name", "whoami")],
    "2025-06-18": [("MCP-Protocol-Version", "2025-06-18"), ("Mcp-Method", "tools/call"), ("Mcp-Name", "whoami")],
    "no version": [("Mcp-Method", "tools/call"), ("Mcp-Name", "whoami")],
    "two versions, the older first": [
        ("MCP-Protocol-Version", "2025-11-25"),
        ("MCP-Protocol-Version", "2026-07-28"),
        ("Mcp-Method", "tools/call"),
        ("Mcp-Name", "whoami"),
    ],
    "ping without a name": [("MCP-Protocol-Version", "2025-11-25"), ("Mcp-Method", "ping")],
}


@pytest.mark.parametrize("dodge", list(DODGES))
async def test_per_tool_rules_are_not_dodged_by_an_older_protocol_version(stack: GatewayStack, dodge: str) -> None:
    token = stack.authorization_server.mint_token(sub="mallory", scopes=["mcp"], audience=stack.resource)
    CALLS.clear()
    headers = [*ACCEPT, ("Authorization", f"Bearer {token}"), *DODGES[dodge]]
    async with httpx2.AsyncClient(timeout=20) as http:
        response = await http.post(stack.resource, content=legacy_call("delete_notes"), headers=headers)
    assert response.status_code == 400, response.text  # the service's refusal, passed on
    assert "delete_notes" not in CALLS


@pytest.mark.parametrize("method", ["tools/call", "ping", "tools/list"])
async def test_on_2026_07_28_the_upstream_refuses_headers_that_name_another_call(
    stack: GatewayStack, method: str
) -> None:
    """The service decides from the headers; the upstream, bound by the version, compares them
    with the body: the body's delete_notes never runs."""
    token = stack.authorization_server.mint_token(sub="mallory", scopes=["mcp"], audience=stack.resource)
    CALLS.clear()
    headers, body = modern_call("delete_notes", name="whoami")
    headers["Mcp-Method"] = method
    if method != "tools/call":
        del headers["Mcp-Name"]
    async with httpx2.AsyncClient(timeout=20) as http:
        response = await http.post(
            stack.resource, content=body, headers={**headers, "Authorization": f"Bearer {token}"}
        )
        honest_headers, honest_body = modern_call("whoami")
        honest = await http.post(
            stack.resource, content=honest_body, headers={**honest_headers, "Authorization": f"Bearer {token}"}
        )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == -32020  # the transport's header mismatch
    assert "delete_notes" not in CALLS
    assert honest.status_code == 200 and tool_result(honest)["x-auth-subject"] == "mallory"


async def test_the_metadata_route_is_no_second_check_endpoint(stack: GatewayStack) -> None:
    token = stack.authorization_server.mint_token(sub="mallory", scopes=["mcp"], audience=stack.resource)
    origin = stack.resource.removesuffix("/mcp")
    forged = {
        "Authorization": f"Bearer {token}",
        "X-Original-Method": "POST",
        "X-Original-URI": "/mcp",
        "X-Forwarded-Method": "POST",
        "X-Forwarded-Uri": "/mcp",
        "Mcp-Method": "tools/call",
        "Mcp-Name": "whoami",
        "MCP-Protocol-Version": "2026-07-28",
    }
    async with httpx2.AsyncClient(timeout=20) as http:
        beyond = await http.get(f"{origin}/.well-known/oauth-protected-resource/x", headers=forged)
        document = await http.get(f"{origin}/.well-known/oauth-protected-resource/mcp", headers=forged)
        root = await http.get(f"{origin}/.well-known/oauth-protected-resource", headers=forged)
    assert beyond.status_code == 404
    assert document.status_code == 200 and document.json()["resource"] == stack.resource
    assert root.json() == document.json()
    for response in (beyond, document, root):
        assert not [name for name in response.headers if name.lower().startswith("x-auth")]


async def test_a_refused_origins_preflight_never_reaches_the_upstream(stack: GatewayStack) -> None:
    UPSTREAM_REQUESTS.clear()
    preflight = {
        "Origin": "https://evil.example",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
    }
    async with httpx2.AsyncClient(timeout=20) as http:
        response = await http.options(stack.resource, headers=preflight)
    assert response.status_code == 403
    assert ("OPTIONS", "/mcp") not in UPSTREAM_REQUESTS


async def test_identity_look_alikes_never_reach_the_upstream(stack: GatewayStack) -> None:
    token = stack.authorization_server.mint_token(sub="alice", scopes=["mcp"], audience=stack.resource)
    headers, body = modern_call("whoami")
    look_alikes = {
        "X_Auth_Subject": "mallory",
        "x_auth_scopes": "notes:delete",
        "X_AUTH_ISSUER": "https://evil.example",
        "X-Auth_Client-Id": "evil",
        "X-AUTH-SUBJECT": "mallory",
    }
    async with httpx2.AsyncClient(timeout=20) as http:
        response = await http.post(
            stack.resource, content=body, headers={**headers, **look_alikes, "Authorization": f"Bearer {token}"}
        )
    assert response.status_code == 200, response.text
    seen = tool_result(response)
    assert seen["look_alikes"] == []
    assert seen["x-auth-subject"] == "alice" and seen["x-auth-scopes"] == "mcp"


async def test_the_gateway_keeps_its_connections_to_the_service(stack: GatewayStack) -> None:
    token = stack.authorization_server.mint_token(sub="alice", scopes=["mcp"], audience=stack.resource)
    headers, body = modern_call("whoami")
    before = len(stack.peers)
    async with httpx2.AsyncClient(timeout=20) as http:
        for _ in range(8):
            response = await http.post(
                stack.resource, content=body, headers={**headers, "Authorization": f"Bearer {token}"}
            )
            assert response.status_code == 200
    connections = set(stack.peers[before:])
    assert len(stack.peers) - before == 8
    assert len(connections) <= 2, connections  # one, or one more if the first was closed


@pytest.fixture
def hung_service() -> Iterator[int]:
    """A port that accepts connections and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield listener.getsockname()[1]


@pytest.mark.parametrize("gateway", ["nginx", "caddy"])
async def test_a_service_that_hangs_is_a_503_in_seconds(gateway: str, hung_service: int, tmp_path: Path) -> None:
    port = free_port()
    with serve(upstream_app()) as upstream:
        upstream_port = int(upstream.rsplit(":", 1)[1])
        front = nginx(tmp_path, port, [hung_service], upstream_port) if gateway == "nginx" else None
        front = front or caddy(tmp_path, port, hung_service, upstream_port)
        with front:
            headers, body = modern_call("whoami")
            # The client waits longer than the configured bound: a gateway that waits for ever fails here.
            async with httpx2.AsyncClient(timeout=30) as http:
                response = await http.post(f"http://127.0.0.1:{port}/mcp", content=body, headers=headers)
    assert response.status_code == 503
    assert response.json()["error"] == "temporarily_unavailable"
