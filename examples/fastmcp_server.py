"""A FastMCP server protected by mcp-oauth-middleware in one line.

Needs: pip install 'mcp-oauth-middleware[demo]'

With `mcp-oauth-middleware demo` running in another terminal (its authorization server is
the default issuer):

    python examples/fastmcp_server.py            # http://127.0.0.1:8001/mcp

Flags: --host, --port, --resource and --issuer (or MCP_AUTH_RESOURCE, MCP_AUTH_ISSUER). /health is public.
"""

from __future__ import annotations

from typing import Any

from _options import protect, run
from fastmcp import Context, FastMCP
from starlette.requests import Request
from starlette.responses import PlainTextResponse

from mcp_auth_middleware import get_auth

mcp = FastMCP("FastMCP example")


@mcp.tool
async def whoami(ctx: Context) -> dict[str, Any]:
    """Who is calling: read from the request's verified token, never from the arguments."""
    auth = get_auth(ctx)
    assert auth is not None  # the middleware lets no unauthenticated request through
    return {"sub": auth.sub, "client_id": auth.client_id, "scopes": sorted(auth.scopes)}


@mcp.custom_route("/health", methods=["GET"])
async def health(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


if __name__ == "__main__":
    app, args = protect(mcp.http_app(), path="/mcp", description=__doc__, required_scopes="mcp", public_paths="/health")
    run(app, args)
