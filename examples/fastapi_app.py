"""A FastAPI app behind the middleware, with a per-route scope through a dependency.

Needs: pip install 'mcp-oauth-middleware[fastapi,server]'

With `mcp-oauth-middleware demo` running in another terminal (its authorization server is
the default issuer):

    python examples/fastapi_app.py               # http://127.0.0.1:8001/api

Flags: --host, --port, --resource and --issuer (or MCP_AUTH_RESOURCE, MCP_AUTH_ISSUER). /health and FastAPI's
interactive docs (/docs, /openapi.json) are public: every other path needs a token;
DELETE /api/repos/NAME needs the scope `repo:delete` (403 with a step-up challenge otherwise).
"""

from __future__ import annotations

from typing import Any

from _options import protect, run
from fastapi import Depends, FastAPI, Request

from mcp_auth_middleware import AuthInfo
from mcp_auth_middleware.integrations.fastapi import require_auth

app = FastAPI()


@app.get("/health")
async def health() -> str:
    return "ok"


@app.get("/api")
async def whoami(request: Request) -> dict[str, Any]:
    auth = request.state.auth
    return {"sub": auth.sub, "client_id": auth.client_id, "scopes": sorted(auth.scopes)}


@app.delete("/api/repos/{name}")
async def delete_repo(name: str, auth: AuthInfo = Depends(require_auth("repo:delete"))) -> dict[str, str]:  # noqa: B008
    return {"deleted": name, "by": auth.sub or ""}


if __name__ == "__main__":
    protected, args = protect(app, path="/api", description=__doc__, public_paths="/health /docs /openapi.json")
    run(protected, args)
