"""`MCPAuthMiddleware(..., broker=broker)`: the one option, and the mistakes made with it."""

from __future__ import annotations

from pathlib import Path

import httpx2
import pytest
from joserfc.jwk import ECKey
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from mcp_auth_middleware import AuthConfig, JWTValidator, MCPAuthMiddleware
from mcp_auth_middleware.broker import Broker
from mcp_auth_middleware.broker.providers import oidc

from .conftest import SECRET


def broker(tmp_path: Path, issuer: str = "https://mcp.example.com/oauth") -> Broker:
    upstream = oidc("https://idp.example.com", "id", "secret")
    return Broker.of(issuer, upstream, "https://mcp.example.com/mcp", [SECRET], storage=str(tmp_path / "b.db"))


def app() -> Starlette:
    return Starlette(routes=[Route("/{path:path}", lambda request: PlainTextResponse("the app"))])


@pytest.mark.parametrize(
    "resource", ["https://mcp.example.com/mcp/", "https://mcp.example.com/other", "https://mcp.example.com:8443/mcp"]
)
def test_a_resource_the_broker_does_not_serve_is_a_startup_error(tmp_path: Path, resource: str) -> None:
    with pytest.raises(ValueError, match="do not include this resource"):
        AuthConfig(resource=resource, broker=broker(tmp_path))


def test_the_broker_comes_alone(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="`broker=` alone"):
        AuthConfig(resource="https://mcp.example.com/mcp", broker=broker(tmp_path), issuer="https://idp.example.com")
    validator = JWTValidator(issuer="https://x", keys=ECKey.generate_key("P-256").as_dict(private=False))
    with pytest.raises(ValueError, match="`broker=` alone"):
        AuthConfig(resource="https://mcp.example.com/mcp", broker=broker(tmp_path), validator=validator)


async def test_the_broker_on_the_resources_origin_is_served_on_another_it_is_not(tmp_path: Path) -> None:
    same = MCPAuthMiddleware(app(), resource="https://mcp.example.com/mcp", broker=broker(tmp_path))
    elsewhere = MCPAuthMiddleware(
        app(), resource="https://mcp.example.com/mcp", broker=broker(tmp_path, "https://login.example.com/oauth")
    )
    for middleware, served in ((same, True), (elsewhere, False)):
        transport = httpx2.ASGITransport(app=middleware)
        async with httpx2.AsyncClient(transport=transport, base_url="https://mcp.example.com") as http:
            metadata = await http.get("/.well-known/oauth-authorization-server/oauth")
            named = (await http.get("/.well-known/oauth-protected-resource/mcp")).json()["authorization_servers"]
        assert (metadata.status_code == 200) is served
        assert named == [middleware.config.broker.issuer]
        await middleware.config.broker.aclose()


def test_the_startup_line_names_the_redirect_uri_and_never_a_storage_password(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from mcp_auth_middleware.broker.storage import SQLiteRecords

    upstream = oidc("https://idp.example.com", "id", "secret")
    with caplog.at_level("INFO", logger="mcp_auth_middleware.broker"):
        storage = "redis://:hunter2-password@redis.internal:6380/0"
        records = SQLiteRecords(":memory:")
        Broker.of("https://mcp.example.com/oauth", upstream, "https://mcp.example.com/mcp", [SECRET],
                  storage=storage, records=records)  # fmt: skip
    assert "register https://mcp.example.com/oauth/callback" in caplog.text
    assert "redis://redis.internal:6380/0" in caplog.text and "hunter2" not in caplog.text


@pytest.mark.parametrize("shape", ["mounted under /api", "behind a proxy with root_path /api"])
async def test_the_broker_is_served_under_a_prefix_as_the_resource_is(tmp_path: Path, shape: str) -> None:
    """docs/deployment.md's two shapes with a prefix: the broker's issuer holds the prefix; its
    endpoints answer at their public paths, its metadata at the host's root as RFC 8414 §3 puts
    it (by `well_known_routes()` when mounted), and the MCP endpoint stays protected."""
    from starlette.routing import Mount

    upstream = oidc("https://idp.example.com", "id", "secret")
    the_broker = Broker.of("https://mcp.example.com/api/oauth", upstream, "https://mcp.example.com/api/mcp",
                           [SECRET], storage=str(tmp_path / "b.db"))  # fmt: skip
    middleware = MCPAuthMiddleware(app(), resource="https://mcp.example.com/api/mcp", broker=the_broker)
    if shape.startswith("mounted"):
        transport = httpx2.ASGITransport(
            app=Starlette(routes=[*middleware.well_known_routes(), Mount("/api", middleware)])
        )
    else:
        transport = httpx2.ASGITransport(app=middleware, root_path="/api")
    async with httpx2.AsyncClient(transport=transport, base_url="https://mcp.example.com") as http:
        metadata = await http.get("/.well-known/oauth-authorization-server/api/oauth")
        assert metadata.status_code == 200, metadata.text
        assert metadata.json()["token_endpoint"] == "https://mcp.example.com/api/oauth/token"
        assert (await http.get("/api/oauth/jwks")).json()["keys"]
        refused = await http.post("/api/oauth/token", data={"grant_type": "refresh_token", "client_id": "nobody"})
        assert refused.status_code == 401 and refused.json()["error"] == "invalid_client"  # the broker answered
        assert (await http.post("/api/mcp")).status_code == 401  # the app, still protected
        assert (await http.get("/api/oauth/elsewhere")).status_code == 401  # not the broker's: protected
    await the_broker.aclose()
