"""The FastAPI example and the require_auth dependency."""

from __future__ import annotations

import sys
from pathlib import Path

from mcp_auth_middleware.testing import LocalIssuer

from ..conftest import ISSUER, asgi_client, bearer

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))

from fastapi_app import create_app

RESOURCE = "https://mcp.example.com/api"


async def test_fastapi_routes_see_the_caller_and_per_route_scopes_get_403(issuer: LocalIssuer) -> None:
    app = create_app(RESOURCE, authorization_servers=[ISSUER], validator=issuer.validator(), required_scopes=["api"])
    narrow = issuer.mint_token(audience=RESOURCE, sub="alice", scopes=["api"])
    admin = issuer.mint_token(audience=RESOURCE, sub="root", scopes=["api", "repo:admin"])
    async with asgi_client(app) as client:
        assert (await client.get("/health")).text == '"ok"'
        assert (await client.get("/api")).status_code == 401
        assert (await client.get("/api", headers=bearer(narrow))).json()["sub"] == "alice"
        denied = await client.delete("/api/repos/x", headers=bearer(narrow))
        assert denied.status_code == 403
        challenge = denied.headers["www-authenticate"]
        assert 'error="insufficient_scope"' in challenge and 'scope="api repo:admin"' in challenge
        assert "resource_metadata=" in challenge
        allowed = await client.delete("/api/repos/x", headers=bearer(admin))
        assert allowed.json() == {"deleted": "x", "by": "root"}
