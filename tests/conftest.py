"""Shared fixtures: one signing key per session, a small echo app, in-process clients."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx2
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from mcp_auth_middleware import MCPAuthMiddleware, get_auth
from mcp_auth_middleware.testing import LocalIssuer

RESOURCE = "https://mcp.example.com/mcp"
ISSUER = "https://auth.example.com"
METADATA_URL = "https://mcp.example.com/.well-known/oauth-protected-resource/mcp"


async def whoami(request: Request) -> JSONResponse:
    auth = request.state.auth
    return JSONResponse(
        {
            "sub": auth.sub,
            "client_id": auth.client_id,
            "scopes": sorted(auth.scopes),
            "user": request.user.display_name,
            "auth_scopes": sorted(request.auth.scopes),
            "get_auth": get_auth(request) is auth and get_auth() is auth,
            "body": (await request.body()).decode("latin-1"),
        }
    )


async def health(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


def echo_app() -> Starlette:
    return Starlette(
        routes=[
            Route("/mcp", whoami, methods=["GET", "POST", "DELETE"]),
            Route("/health", health),
            Route("/static/file", health),
        ]
    )


@pytest.fixture(scope="session")
def issuer() -> LocalIssuer:
    return LocalIssuer(ISSUER)


@pytest.fixture
def token(issuer: LocalIssuer) -> str:
    return issuer.mint_token(audience=RESOURCE, sub="alice", scopes=["mcp", "read"], client_id="app-1")


@pytest.fixture
def make_app(issuer: LocalIssuer) -> Callable[..., MCPAuthMiddleware]:
    def make(**options: Any) -> MCPAuthMiddleware:
        options.setdefault("validator", issuer.validator())
        options.setdefault("authorization_servers", [ISSUER])
        return MCPAuthMiddleware(options.pop("app", None) or echo_app(), resource=RESOURCE, **options)

    return make


@pytest.fixture
async def client(make_app: Callable[..., MCPAuthMiddleware]) -> AsyncIterator[httpx2.AsyncClient]:
    async with asgi_client(make_app()) as c:
        yield c


def asgi_client(app: Any) -> httpx2.AsyncClient:
    return httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="https://mcp.example.com")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
