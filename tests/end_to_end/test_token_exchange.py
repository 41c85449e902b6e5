"""The whole chain on real uvicorn: the MCP SDK client signs in (OAuth, PKCE, RFC 8707) to a
FastMCP server; its tool exchanges the caller's token (RFC 8693) and calls a downstream API
that our middleware protects for its own resource. The downstream sees the user as `sub` and
the MCP server as the actor, refuses the original token, and never receives it."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx2
import pytest
from fastmcp import Context, FastMCP
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from mcp_auth_middleware import MCPAuthMiddleware
from mcp_auth_middleware.exchange import Downstream, TokenExchange
from mcp_auth_middleware.server import LocalAuthorizationServer
from mcp_auth_middleware.testing import free_port, serve

from .test_oauth_flow import Browser, MemoryStorage

pytestmark = pytest.mark.end_to_end


@dataclass
class Chain:
    issuer: str
    resource: str
    api: str
    seen: list[str]  # SHA-256 of every token the downstream API received
    exchange: TokenExchange


@pytest.fixture(scope="module")
def chain() -> Iterator[Chain]:
    as_port, mcp_port, api_port = free_port(), free_port(), free_port()
    issuer = f"http://127.0.0.1:{as_port}"
    resource, api = f"http://127.0.0.1:{mcp_port}/mcp", f"http://127.0.0.1:{api_port}/api"
    authorization_server = LocalAuthorizationServer(issuer, user="dana", scopes_supported=["mcp", "tickets:read"])
    authorization_server.register_client(client_id="mcp-server", client_secret="s3cret", grant_types=[])
    authorization_server.allow_token_exchange("mcp-server", from_resources=[resource], to_resources=[api])

    seen: list[str] = []

    async def tickets(request: Request) -> JSONResponse:
        auth = request.state.auth
        return JSONResponse({"sub": auth.sub, "actors": list(auth.actors), "scopes": sorted(auth.scopes)})

    class Witness:
        """Remembers (as hashes) the tokens the downstream API is given."""

        def __init__(self, app: Any) -> None:
            self.app = app

        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            for name, value in scope.get("headers", []):
                if name == b"authorization":
                    seen.append(hashlib.sha256(value.split(b" ", 1)[-1]).hexdigest())
            await self.app(scope, receive, send)

    downstream = Witness(
        MCPAuthMiddleware(Starlette(routes=[Route("/api", tickets)]), resource=api, issuer=issuer, dpop=True)
    )

    exchange = TokenExchange(
        client_id="mcp-server",
        client_secret="s3cret",
        issuer=issuer,
        downstreams={"tickets": Downstream(api, scopes="tickets:read")},
        dpop=True,
    )
    mcp = FastMCP("tickets")

    @mcp.tool
    async def my_tickets(ctx: Context) -> dict[str, Any]:
        """What the ticket system says about the caller, asked for them."""
        async with httpx2.AsyncClient(auth=exchange.auth(ctx, "tickets")) as http:
            answer = await http.get(api)
        return {"status": answer.status_code, **answer.json()}

    # The user's token must hold what the exchange passes on: the tool asks for it (403 step-up).
    app = MCPAuthMiddleware(
        mcp.http_app(),
        resource=resource,
        issuer=issuer,
        required_scopes=["mcp"],
        tool_scopes={"my_tickets": ["tickets:read"]},
    )
    with (
        serve(authorization_server.app, port=as_port),
        serve(downstream, port=api_port),
        serve(app, port=mcp_port),
    ):
        yield Chain(issuer, resource, api, seen, exchange)


async def test_a_tool_calls_another_api_for_the_signed_in_user(chain: Chain) -> None:
    from mcp.client.auth import OAuthClientProvider
    from mcp.shared.auth import OAuthClientMetadata

    browser, storage = Browser(), MemoryStorage()
    metadata = OAuthClientMetadata(redirect_uris=["http://127.0.0.1:33418/callback"], client_name="e2e")
    provider = OAuthClientProvider(
        chain.resource, metadata, storage, browser.redirect_handler, browser.callback_handler
    )
    async with (
        httpx2.AsyncClient(auth=provider, timeout=20) as http,
        Client(streamable_http_client(chain.resource, http_client=http)) as client,
    ):
        first = await client.call_tool("my_tickets", {})
        second = await client.call_tool("my_tickets", {})
    assert first.structured_content == {
        "status": 200,
        "sub": "dana",
        "actors": ["mcp-server"],
        "scopes": ["tickets:read"],
    }
    assert second.structured_content == first.structured_content
    assert chain.exchange.exchanges == 1 and chain.exchange.hits >= 1  # the second call: from the cache
    # Signed in for `mcp`, stepped up for `tickets:read` when the tool needed it (a second sign-in).
    assert len(browser.authorize_urls) == 2
    assert storage.tokens is not None
    original = storage.tokens.access_token
    # The downstream never received the user's token: only exchanged ones.
    assert hashlib.sha256(original.encode()).hexdigest() not in chain.seen and len(chain.seen) == 2
    # And refuses it: its audience is the MCP server (RFC 8707), not this API.
    async with httpx2.AsyncClient() as http:
        refused = await http.get(chain.api, headers={"authorization": f"Bearer {original}"})
    assert refused.status_code == 401 and 'error="invalid_token"' in refused.headers["www-authenticate"]
