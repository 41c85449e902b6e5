"""An authorization server that exchanges tokens (the local one, in process), the MCP server's
client at it, and a route behind the middleware from which a tool asks for a token."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

import httpx2
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from mcp_auth_middleware import JWTValidator, MCPAuthMiddleware
from mcp_auth_middleware.exchange import Downstream, TokenExchange
from mcp_auth_middleware.server import LocalAuthorizationServer

AS_ISSUER = "https://auth.example.com"
MCP = "https://mcp.example.com/mcp"
TICKETS = "https://tickets.example.com/api"
SECRET = "the-mcp-servers-secret"


class Recorder:
    """The authorization server's app, recording each token request's form and headers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        #: (form, headers, query string) of each token request
        self.requests: list[tuple[dict[str, list[str]], dict[str, str], str]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/token":
            request = Request(scope, receive)
            body = await request.body()
            self.requests.append(
                (parse_qs(body.decode(), keep_blank_values=True), dict(request.headers), scope["query_string"].decode())
            )

            async def replay() -> dict[str, Any]:
                return {"type": "http.request", "body": body, "more_body": False}

            await self.app(scope, replay, send)
            return
        await self.app(scope, receive, send)


@pytest.fixture
def auth_server() -> LocalAuthorizationServer:
    server = LocalAuthorizationServer(AS_ISSUER, scopes_supported=["mcp", "tickets:read", "tickets:write"])
    server.register_client(client_id="mcp-server", client_secret=SECRET, grant_types=["client_credentials"])
    server.allow_token_exchange(
        "mcp-server", from_resources=[MCP], to_resources=[TICKETS], scopes=["tickets:read", "tickets:write"]
    )
    return server


@pytest.fixture
def recorder(auth_server: LocalAuthorizationServer) -> Recorder:
    return Recorder(auth_server.app)


@pytest.fixture
def make_exchange(recorder: Recorder) -> Callable[..., TokenExchange]:
    def make(**options: Any) -> TokenExchange:
        client = httpx2.AsyncClient(transport=httpx2.ASGITransport(app=options.pop("as_app", recorder)))
        options.setdefault("client_id", "mcp-server")
        options.setdefault("client_secret", SECRET)
        if "issuer" not in options:
            options.setdefault("token_endpoint", f"{AS_ISSUER}/token")
        options.setdefault("downstreams", {"tickets": Downstream(TICKETS, scopes=["tickets:read"])})
        return TokenExchange(http_client=client, **options)

    return make


def mcp_server(auth_server: LocalAuthorizationServer, tool: Callable[[Request], Any]) -> MCPAuthMiddleware:
    """A route behind the middleware (resource MCP) whose handler is `tool(request)`."""

    async def endpoint(request: Request) -> JSONResponse:
        return JSONResponse(await tool(request))

    validator = JWTValidator(issuer=AS_ISSUER, keys=auth_server.key.as_dict(private=False))
    return MCPAuthMiddleware(
        Starlette(routes=[Route("/mcp", endpoint, methods=["POST"])]),
        resource=MCP,
        authorization_servers=[AS_ISSUER],
        validator=validator,
        required_scopes=["mcp"],
    )


def downstream_api(auth_server: LocalAuthorizationServer, **options: Any) -> MCPAuthMiddleware:
    """The API the tool calls: protected by the middleware for its own resource, TICKETS."""

    async def whoami(request: Request) -> JSONResponse:
        auth = request.state.auth
        return JSONResponse(
            {"sub": auth.sub, "actors": list(auth.actors), "client_id": auth.client_id, "scopes": sorted(auth.scopes)}
        )

    options.setdefault("validator", JWTValidator(issuer=AS_ISSUER, keys=auth_server.key.as_dict(private=False)))
    return MCPAuthMiddleware(
        Starlette(routes=[Route("/api", whoami)]),
        resource=TICKETS,
        authorization_servers=[AS_ISSUER],
        **options,
    )


def api_client(app: ASGIApp) -> httpx2.AsyncClient:
    """In-process client of the downstream API, at the URL its tokens are for (DPoP `htu`)."""
    return httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="https://tickets.example.com")
