"""A plain Starlette app: the middleware in Starlette's own `middleware=[...]` style.

MCP_RESOURCE=http://127.0.0.1:8000/api MCP_ISSUER=https://auth.example.com python examples/starlette_app.py
"""

from __future__ import annotations

import os
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from mcp_auth_middleware import MCPAuthMiddleware


async def whoami(request: Request) -> JSONResponse:
    auth = request.state.auth
    return JSONResponse({"sub": auth.sub, "client_id": auth.client_id, "scopes": sorted(auth.scopes)})


async def health(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


def create_app(resource: str, **auth: Any) -> Starlette:
    return Starlette(
        routes=[Route("/api", whoami, methods=["GET", "POST"]), Route("/health", health)],
        middleware=[Middleware(MCPAuthMiddleware, resource=resource, public_paths=["/health"], **auth)],
    )


if __name__ == "__main__":
    import uvicorn

    app = create_app(os.environ["MCP_RESOURCE"], issuer=os.environ["MCP_ISSUER"])
    uvicorn.run(app, host="127.0.0.1", port=8000)
