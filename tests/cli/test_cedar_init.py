"""`mcp-oauth-middleware cedar-init` against a running FastMCP server behind the middleware: the
schema types each tool's arguments, the policies it writes validate against it, and the Cedar
engine runs them."""

from __future__ import annotations

import json
from pathlib import Path

import cedarpy
import pytest
from fastmcp import FastMCP

from mcp_auth_middleware import AuthInfo, MCPAuthMiddleware
from mcp_auth_middleware.cli import main
from mcp_auth_middleware.engines import Cedar, DecisionRequest
from mcp_auth_middleware.testing import free_port, running_authorization_server, serve

pytestmark = pytest.mark.end_to_end


def server() -> FastMCP:
    mcp = FastMCP("notes")

    @mcp.tool
    def whoami() -> str:
        return "you"

    @mcp.tool
    def delete_notes(project: str, force: bool = False, limit: int = 10) -> str:
        return "deleted"

    return mcp


async def test_cedar_init_writes_a_schema_and_policies_that_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port()
    resource = f"http://127.0.0.1:{port}/mcp"
    with running_authorization_server(scopes_supported=["mcp"]) as authorization_server:
        app = MCPAuthMiddleware(server().http_app(), resource=resource, issuer=authorization_server.issuer)
        token = authorization_server.mint_token(sub="alice", audience=resource)
        with serve(app, port=port):
            import asyncio

            code = await asyncio.to_thread(main, ["cedar-init", resource, "--token", token, "--out", str(tmp_path)])
            again = await asyncio.to_thread(main, ["cedar-init", resource, "--token", token, "--out", str(tmp_path)])
            out, err = capsys.readouterr()
            refused = await asyncio.to_thread(
                main, ["cedar-init", resource, "--token", "nope", "--out", str(tmp_path / "x")]
            )
            _, refusal = capsys.readouterr()
        closed = await asyncio.to_thread(main, ["cedar-init", resource, "--token", token, "--out", str(tmp_path / "y")])
        _, unreachable = capsys.readouterr()
    assert code == 0 and "(2 tools)" in out
    assert again == 2 and "already there" in err
    # Why, in one line: the server's status and challenge, not the SDK's "TaskGroup" wrapper.
    assert refused == 3 and "could not list the tools" in refusal and "answered 401" in refusal
    assert 'error="invalid_token"' in refusal and "TaskGroup" not in refusal and "nope" not in refusal
    assert closed == 3 and "ConnectError" in unreachable and "TaskGroup" not in unreachable
    policies, schema = (tmp_path / "mcp.cedar").read_text(), (tmp_path / "mcp.cedarschema.json").read_text()
    assert "// delete_notes(project: String, force: Boolean, limit: Long)" in policies
    arguments = json.loads(schema)["Mcp"]["actions"]["tools/call"]["appliesTo"]["context"]["attributes"]["arguments"]
    assert arguments["attributes"]["project"] == {"type": "String", "required": False}
    assert cedarpy.validate_policies(policies, schema).validation_passed
    engine = Cedar(tmp_path / "mcp.cedar", schema=tmp_path / "mcp.cedarschema.json")
    caller = AuthInfo("alice", "claude", frozenset({"mcp"}))
    decision = await engine.decide(
        DecisionRequest(caller, "tools/call", "delete_notes", {"project": "a", "force": True})
    )
    assert decision.allowed
    assert not (await engine.decide(DecisionRequest(caller, "tools/call", "not_listed", {}))).allowed
