"""RFC 8414 / OpenID Connect discovery (D1, D2) against real servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mcp_auth_middleware import AuthorizationServerUnavailableError, MCPAuthMiddleware, discover_authorization_server
from mcp_auth_middleware.discovery import metadata_urls
from mcp_auth_middleware.testing import free_port, running_authorization_server, serve

from .conftest import asgi_client, bearer, echo_app


def test_d1_url_order_for_issuer_with_and_without_path() -> None:
    assert metadata_urls("https://as.example") == [
        "https://as.example/.well-known/oauth-authorization-server",
        "https://as.example/.well-known/openid-configuration",
    ]
    assert metadata_urls("https://as.example/tenant/1") == [
        "https://as.example/.well-known/oauth-authorization-server/tenant/1",
        "https://as.example/.well-known/openid-configuration/tenant/1",
        "https://as.example/tenant/1/.well-known/openid-configuration",
    ]


class MetadataHost:
    def __init__(self, documents: dict[str, Any]) -> None:
        self.documents = documents
        self.hits: list[str] = []
        self.app = Starlette(routes=[Route("/{path:path}", self.handle)])

    async def handle(self, request: Request) -> Response:
        self.hits.append(request.url.path)
        document = self.documents.get(request.url.path)
        return JSONResponse(document) if document is not None else Response(status_code=404)


@pytest.fixture
def host() -> Iterator[tuple[MetadataHost, str]]:
    metadata = MetadataHost({})
    with serve(metadata.app) as base:
        yield metadata, base


async def test_d1_oidc_appended_form_found_last(host: tuple[MetadataHost, str]) -> None:
    metadata, base = host
    issuer = f"{base}/realms/mcp"
    metadata.documents["/realms/mcp/.well-known/openid-configuration"] = {"issuer": issuer, "jwks_uri": "x"}
    document = await discover_authorization_server(issuer)
    assert document["jwks_uri"] == "x"
    assert metadata.hits == [
        "/.well-known/oauth-authorization-server/realms/mcp",
        "/.well-known/openid-configuration/realms/mcp",
        "/realms/mcp/.well-known/openid-configuration",
    ]


async def test_d2_issuer_mismatch_is_an_error(host: tuple[MetadataHost, str]) -> None:
    metadata, base = host
    metadata.documents["/.well-known/oauth-authorization-server"] = {"issuer": "https://evil.example"}
    with pytest.raises(AuthorizationServerUnavailableError, match="names issuer"):
        await discover_authorization_server(base)


async def test_nothing_found_is_a_clear_error(host: tuple[MetadataHost, str]) -> None:
    _, base = host
    with pytest.raises(AuthorizationServerUnavailableError, match="no authorization server metadata"):
        await discover_authorization_server(base)


async def test_one_line_form_discovers_jwks_and_validates() -> None:
    with running_authorization_server() as server:
        resource = "https://mcp.example.com/mcp"
        app = MCPAuthMiddleware(echo_app(), resource=resource, issuer=server.issuer)
        token = server.mint_token(sub="carol", audience=resource)
        async with asgi_client(app) as client:
            response = await client.post("/mcp", headers=bearer(token))
        assert response.json()["sub"] == "carol"


async def test_one_line_form_with_as_down_answers_503_then_recovers() -> None:
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    resource = "https://mcp.example.com/mcp"
    app = MCPAuthMiddleware(echo_app(), resource=resource, issuer=issuer)
    from mcp_auth_middleware.server import LocalAuthorizationServer

    server = LocalAuthorizationServer(issuer)
    token = server.mint_token(audience=resource)
    async with asgi_client(app) as client:
        down = await client.post("/mcp", headers=bearer(token))
        assert down.status_code == 503 and int(down.headers["retry-after"]) >= 1
        with serve(server.app, port=port):
            await asyncio.sleep(2.1)  # failed fetches are retried at most every 2 s
            up = await client.post("/mcp", headers=bearer(token))
    assert up.status_code == 200


def test_one_line_introspection_needs_credentials() -> None:
    with pytest.raises(ValueError, match="client_id"):
        MCPAuthMiddleware(
            echo_app(), resource="https://x/mcp", issuer="https://as.example", token_validation="introspection"
        )
    with pytest.raises(ValueError, match="token_validation"):
        MCPAuthMiddleware(echo_app(), resource="https://x/mcp", issuer="https://as.example", token_validation="magic")  # type: ignore[arg-type]
