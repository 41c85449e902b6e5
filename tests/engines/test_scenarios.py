"""The same scenarios decided by a real AuthZEN decision point (Cerbos, over HTTP) and by Cedar
embedded: the MCP SDK client calling tools through the middleware on uvicorn, and through real
nginx with the gateway service (configured by its variables: MCP_AUTH_DECISION_ENGINE), against
policies on the tool's name, an argument (a project the caller owns), a claim (a role) and the
time; and the decision point stopped mid-run (503)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest
from fastmcp import FastMCP
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from mcp_auth_middleware import MCPAuthMiddleware
from mcp_auth_middleware.engines import AuthZEN, Cedar
from mcp_auth_middleware.server import LocalAuthorizationServer
from mcp_auth_middleware.testing import LocalIssuer, free_port, running_authorization_server, serve

from ..gateway.conftest import _process, nginx
from .conftest import POLICIES, Cerbos, start_cerbos

pytestmark = [pytest.mark.end_to_end, pytest.mark.interop]

CLI = str(Path(sys.executable).with_name("mcp-oauth-middleware"))
TOOLS = ("whoami", "delete_notes", "audit", "until_2100", "until_2001")


def mcp_server() -> FastMCP:
    mcp = FastMCP("decided")
    for name in TOOLS:

        def tool(project: str = "") -> str:
            return "done"

        mcp.tool(tool, name=name)
    return mcp


@dataclass
class Stack:
    resource: str
    gateway_resource: str
    authorization_server: LocalAuthorizationServer
    gateway_output: Path


@pytest.fixture(scope="module", params=["authzen", "cedar"])
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    directory = tmp_path_factory.mktemp(request.param)
    with ExitStack() as running:
        if request.param == "authzen":
            cerbos = start_cerbos(directory)
            running.callback(cerbos.stop)

            def engine() -> Any:  # one per server: each runs its own event loop
                return AuthZEN(cerbos.url, allow_http=True, cache_ttl=0.5)

            named = f"authzen:{cerbos.url}"
        else:
            policies = directory / "mcp.cedar"
            policies.write_text((POLICIES / "mcp.cedar").read_text())

            def engine() -> Any:
                return Cedar(policies)

            named = f"cedar:{policies}"

        port, gateway_port = free_port(), free_port()
        resource, gateway_resource = f"http://127.0.0.1:{port}/mcp", f"http://127.0.0.1:{gateway_port}/mcp"
        server = running.enter_context(running_authorization_server(scopes_supported=["mcp"]))
        options: dict[str, Any] = {"issuer": server.issuer, "required_scopes": ["mcp"]}
        middleware = MCPAuthMiddleware(mcp_server().http_app(), resource=resource, decision_engine=engine(), **options)
        running.enter_context(serve(middleware, port=port))
        # The same policies behind nginx: the service decides from Mcp-Method and Mcp-Name alone.
        upstream = running.enter_context(serve(mcp_server().http_app(stateless_http=True)))
        # The service as users run it: the command, every option from its variable.
        variables = {
            "MCP_AUTH_GATEWAY": "nginx",
            "MCP_AUTH_RESOURCE": gateway_resource,
            "MCP_AUTH_ISSUER": server.issuer,
            "MCP_AUTH_REQUIRED_SCOPES": "mcp",
            "MCP_AUTH_DECISION_ENGINE": named,
        }
        auth_port, output = free_port(), directory / "gateway.log"
        command = [CLI, "gateway", "--port", str(auth_port)]
        running.enter_context(_process(command, auth_port, "the service", output, env={**os.environ, **variables}))
        running.enter_context(nginx(directory / "nginx", gateway_port, [auth_port], int(upstream.rsplit(":", 1)[1])))
        yield Stack(resource, gateway_resource, server, output)


async def outcome(stack: Stack, token: str, tool: str, *, url: str | None = None, **arguments: str) -> str:
    """What the MCP SDK client gets calling `tool` (at the middleware, or `url`): "allowed", or
    "refused" (the 403)."""
    try:
        async with (
            httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=20) as http,
            Client(streamable_http_client(url or stack.resource, http_client=http)) as client,
        ):
            result = await client.call_tool(tool, arguments)
    except ExceptionGroup as group:
        if group.subgroup(MCPError) is None:
            raise
        return "refused"
    return "allowed" if not result.is_error else "error"


async def test_the_engine_decides_on_name_argument_claim_and_time(stack: Stack) -> None:
    alice = stack.authorization_server.mint_token(sub="alice", scopes=["mcp"], audience=stack.resource)
    # A token with a `roles` claim, signed by the authorization server's key (as its own are).
    issuer = LocalIssuer(stack.authorization_server.issuer, key=stack.authorization_server.key)
    auditor = issuer.mint_token(sub="carol", scopes=["mcp"], audience=stack.resource, roles=["auditor"])
    decided = {
        "whoami": await outcome(stack, alice, "whoami"),
        "own project": await outcome(stack, alice, "delete_notes", project="alice"),
        "another's project": await outcome(stack, alice, "delete_notes", project="bob"),
        "no project": await outcome(stack, alice, "delete_notes"),
        "audit as auditor": await outcome(stack, auditor, "audit"),
        "audit as alice": await outcome(stack, alice, "audit"),
        "open until 2100": await outcome(stack, alice, "until_2100"),
        "closed since 2001": await outcome(stack, alice, "until_2001"),
    }
    assert decided == {
        "whoami": "allowed",
        "own project": "allowed",
        "another's project": "refused",
        "no project": "refused",
        "audit as auditor": "allowed",
        "audit as alice": "refused",
        "open until 2100": "allowed",
        "closed since 2001": "refused",
    }


async def test_behind_nginx_the_service_decides_from_the_headers(stack: Stack) -> None:
    token = stack.authorization_server.mint_token(sub="alice", scopes=["mcp"], audience=stack.gateway_resource)
    decided = {
        tool: await outcome(stack, token, tool, url=stack.gateway_resource, **arguments)
        for tool, arguments in (("whoami", {}), ("until_2001", {}), ("delete_notes", {"project": "alice"}))
    }
    # At the gateway the arguments are unknown: a rule on an argument cannot allow.
    assert decided == {"whoami": "allowed", "until_2001": "refused", "delete_notes": "refused"}
    engine = "AuthZEN('http://127.0.0.1" if "authzen" in stack.gateway_output.parent.name else "Cedar('/"
    assert f"decided by {engine}" in stack.gateway_output.read_text()  # the startup line names it


async def test_a_decision_point_that_stops_is_a_503_never_an_allow(tmp_path: Path) -> None:
    cerbos: Cerbos = start_cerbos(tmp_path)
    engine = AuthZEN(cerbos.url, allow_http=True, cache_ttl=0.01)
    port = free_port()
    resource = f"http://127.0.0.1:{port}/mcp"
    with running_authorization_server(scopes_supported=["mcp"]) as server:
        app = MCPAuthMiddleware(
            mcp_server().http_app(stateless_http=True), resource=resource, issuer=server.issuer, decision_engine=engine
        )
        token = server.mint_token(sub="alice", scopes=["mcp"], audience=resource)
        with serve(app, port=port):
            headers = {"Authorization": f"Bearer {token}", "Accept": "application/json, text/event-stream"}
            body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "whoami", "arguments": {}}}
            async with httpx2.AsyncClient(timeout=20) as http:
                before = await http.post(resource, json=body, headers=headers)
                cerbos.stop()
                after = await http.post(resource, json={**body, "id": 2}, headers=headers)
    assert before.status_code == 200
    assert after.status_code == 503 and "retry-after" in after.headers
