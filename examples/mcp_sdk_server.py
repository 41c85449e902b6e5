"""An MCP SDK `MCPServer` protected by mcp-auth-middleware in one line.

MCP_RESOURCE=http://127.0.0.1:8000/mcp MCP_ISSUER=https://auth.example.com python examples/mcp_sdk_server.py
"""

from __future__ import annotations

import os
from typing import Any

from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.mcpserver import Context, MCPServer
from starlette.types import ASGIApp

from mcp_auth_middleware import MCPAuthMiddleware, get_auth

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


def create_app(resource: str, **auth: Any) -> ASGIApp:
    return MCPAuthMiddleware(server.streamable_http_app(), resource=resource, **auth)


if __name__ == "__main__":
    import uvicorn

    app = create_app(os.environ["MCP_RESOURCE"], issuer=os.environ["MCP_ISSUER"])
    uvicorn.run(app, host="127.0.0.1", port=8000)
