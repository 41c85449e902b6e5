"""A plain Starlette app behind the middleware; `/health` stays public.

Needs: pip install 'mcp-oauth-middleware[server]'

With `mcp-oauth-middleware demo` running in another terminal (its authorization server is
the default issuer):

    python examples/starlette_app.py             # http://127.0.0.1:8001/api

Flags: --host, --port, --resource and --issuer (or MCP_AUTH_RESOURCE, MCP_AUTH_ISSUER).
"""

from __future__ import annotations

from _options import protect, run
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route


async def whoami(request: Request) -> JSONResponse:
    auth = request.state.auth
    return JSONResponse({"sub": auth.sub, "client_id": auth.client_id, "scopes": sorted(auth.scopes)})


async def health(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


app = Starlette(routes=[Route("/api", whoami, methods=["GET", "POST"]), Route("/health", health)])

if __name__ == "__main__":
    protected, args = protect(app, path="/api", description=__doc__, public_paths="/health")
    run(protected, args)
