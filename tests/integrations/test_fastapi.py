"""The FastAPI integration: the caller in a route, and per-route scopes through `require_auth`."""

from __future__ import annotations

from typing import Any

from fastapi import Depends, FastAPI, Request

from mcp_auth_middleware import AuthInfo, MCPAuthMiddleware
from mcp_auth_middleware.integrations.fastapi import require_auth
from mcp_auth_middleware.testing import LocalIssuer

from ..conftest import ISSUER, asgi_client, bearer

RESOURCE = "https://mcp.example.com/api"


def create_app(resource: str, **auth: Any) -> FastAPI:
    app = FastAPI()
    app.add_middleware(MCPAuthMiddleware, resource=resource, public_paths=["/health"], **auth)  # type: ignore[arg-type]

    @app.get("/health")
    async def health() -> str:
        return "ok"

    @app.get("/api")
    async def whoami(request: Request) -> dict[str, Any]:
        return {"sub": request.state.auth.sub}

    @app.delete("/api/repos/{name}")
    async def delete_repo(name: str, auth: AuthInfo = Depends(require_auth("repo:delete"))) -> dict[str, str]:  # noqa: B008
        return {"deleted": name, "by": auth.sub or ""}

    return app


async def test_fastapi_routes_see_the_caller_and_per_route_scopes_get_403(issuer: LocalIssuer) -> None:
    app = create_app(RESOURCE, authorization_servers=[ISSUER], validator=issuer.validator(), required_scopes=["api"])
    narrow = issuer.mint_token(audience=RESOURCE, sub="alice", scopes=["api"])
    admin = issuer.mint_token(audience=RESOURCE, sub="root", scopes=["api", "repo:delete"])
    async with asgi_client(app) as client:
        assert (await client.get("/health")).text == '"ok"'
        assert (await client.get("/api")).status_code == 401
        assert (await client.get("/api", headers=bearer(narrow))).json()["sub"] == "alice"
        denied = await client.delete("/api/repos/x", headers=bearer(narrow))
        assert denied.status_code == 403
        challenge = denied.headers["www-authenticate"]
        assert 'error="insufficient_scope"' in challenge and 'scope="api repo:delete"' in challenge
        assert "resource_metadata=" in challenge
        allowed = await client.delete("/api/repos/x", headers=bearer(admin))
        assert allowed.json() == {"deleted": "x", "by": "root"}
