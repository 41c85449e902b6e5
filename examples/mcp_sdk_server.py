"""An MCP SDK `MCPServer` protected by mcp-oauth-middleware in one line.

Needs: pip install 'mcp-oauth-middleware[mcp,server]'

With `mcp-oauth-middleware demo` running in another terminal (its authorization server is
the default issuer):

    python examples/mcp_sdk_server.py            # http://127.0.0.1:8001/mcp

Flags: --host, --port, --resource and --issuer (or MCP_AUTH_RESOURCE, MCP_AUTH_ISSUER). /health is public.
"""

from __future__ import annotations

from typing import Any

from _options import protect, run
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.mcpserver import Context, MCPServer
from starlette.requests import Request
from starlette.responses import PlainTextResponse

from mcp_auth_middleware import get_auth

server = MCPServer("MCP SDK example")


@server.tool()
async def whoami(ctx: Context) -> dict[str, Any]:
    """Who is calling, via our get_auth() and via the SDK's own get_access_token()."""
    auth = get_auth(ctx)
    sdk_token = get_access_token()
    assert auth is not None and sdk_token is not None
    return {
        "sub": auth.sub,
        "client_id": auth.client_id,
        "scopes": sorted(auth.scopes),
        "sdk_client_id": sdk_token.client_id,
    }


@server.custom_route("/health", methods=["GET"])
async def health(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


if __name__ == "__main__":
    app, args = protect(
        server.streamable_http_app(), path="/mcp", description=__doc__, required_scopes="mcp", public_paths="/health"
    )
    run(app, args)
