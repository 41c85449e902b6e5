"""A FastAPI app behind the middleware, with a per-route scope through a dependency.

MCP_RESOURCE=http://127.0.0.1:8000/api MCP_ISSUER=https://auth.example.com python examples/fastapi_app.py
"""

from __future__ import annotations

import os
from typing import Any

from fastapi import Depends, FastAPI, Request

from mcp_auth_middleware import AuthInfo, MCPAuthMiddleware
from mcp_auth_middleware.integrations.fastapi import require_auth


def create_app(resource: str, **auth: Any) -> FastAPI:
    app = FastAPI()
    app.add_middleware(MCPAuthMiddleware, resource=resource, public_paths=["/health"], **auth)  # type: ignore[arg-type]

    @app.get("/health")
    async def health() -> str:
        return "ok"

    @app.get("/api")
    async def whoami(request: Request) -> dict[str, Any]:
        auth = request.state.auth
        return {"sub": auth.sub, "client_id": auth.client_id, "scopes": sorted(auth.scopes)}

    @app.delete("/api/repos/{name}")
    async def delete_repo(name: str, auth: AuthInfo = Depends(require_auth("repo:admin"))) -> dict[str, str]:  # noqa: B008
        return {"deleted": name, "by": auth.sub or ""}

    return app


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(create_app(os.environ["MCP_RESOURCE"], issuer=os.environ["MCP_ISSUER"]), host="127.0.0.1", port=8000)
