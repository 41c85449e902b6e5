"""A FastMCP server protected by mcp-auth-middleware in one line.

MCP_RESOURCE=http://127.0.0.1:8000/mcp MCP_ISSUER=https://auth.example.com python examples/fastmcp_server.py
"""

from __future__ import annotations

import os
from typing import Any

from fastmcp import Context, FastMCP
from starlette.types import ASGIApp

from mcp_auth_middleware import MCPAuthMiddleware, get_auth

mcp = FastMCP("FastMCP example")


@mcp.tool
async def whoami(ctx: Context) -> dict[str, Any]:
    """Who is calling: read from the request's verified token, never from the arguments."""
    auth = get_auth(ctx)
    assert auth is not None  # the middleware lets no unauthenticated request through
    return {"sub": auth.sub, "client_id": auth.client_id, "scopes": sorted(auth.scopes)}


def create_app(resource: str, **auth: Any) -> ASGIApp:
    return MCPAuthMiddleware(mcp.http_app(), resource=resource, **auth)


if __name__ == "__main__":
    import uvicorn

    app = create_app(os.environ["MCP_RESOURCE"], issuer=os.environ["MCP_ISSUER"])
    uvicorn.run(app, host="127.0.0.1", port=8000)
