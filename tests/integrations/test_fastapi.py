"""The FastAPI integration: the caller in a route, and per-route scopes through `require_auth`."""

from __future__ import annotations

import logging
from typing import Any

import pytest
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


async def test_a_route_denial_is_the_middlewares_denial(issuer: LocalIssuer, caplog: pytest.LogCaptureFixture) -> None:
    """One denial, one log line, one body shape: `require_auth`'s 403 has the middleware's body
    (not FastAPI's `{"detail": ...}`) and the same log line as a per-tool 403."""
    app = create_app(RESOURCE, authorization_servers=[ISSUER], validator=issuer.validator(), required_scopes=["api"])
    narrow = issuer.mint_token(audience=RESOURCE, sub="alice", scopes=["api"])
    with caplog.at_level(logging.INFO, logger="mcp_auth_middleware"):
        async with asgi_client(app) as client:
            denied = await client.delete("/api/repos/x", headers=bearer(narrow))
    assert denied.status_code == 403
    assert denied.json() == {
        "error": "insufficient_scope",
        "error_description": "The access token lacks a required scope",
    }
    assert denied.headers["content-length"] == str(len(denied.content))
    lines = [r for r in caplog.records if getattr(r, "auth_outcome", None) == "deny"]
    assert len(lines) == 1 and lines[0].levelno == logging.INFO
    assert lines[0].auth_status == 403  # type: ignore[attr-defined]
    assert lines[0].auth_reason == (  # type: ignore[attr-defined]
        "The access token lacks a required scope: scope repo:delete missing for DELETE /api/repos/x"
    )
