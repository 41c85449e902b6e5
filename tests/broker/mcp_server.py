"""The MCP server the broker's end-to-end tests sign clients in to: a FastMCP server behind the
middleware, which names the broker and serves its endpoints. `app` is one replica of it,
configured from the environment (tests/end_to_end/test_broker.py starts two on one Redis)."""

from __future__ import annotations

import os
from typing import Any

import httpx2
from fastmcp import Context, FastMCP

from mcp_auth_middleware import MCPAuthMiddleware
from mcp_auth_middleware.broker import Broker
from mcp_auth_middleware.broker.providers import oidc
from mcp_auth_middleware.caller import get_auth


def protected_server(broker: Broker, resource: str) -> Any:
    """A FastMCP server behind the middleware, which names the broker and serves its endpoints."""
    mcp = FastMCP("broker e2e")

    @mcp.tool
    async def whoami(ctx: Context) -> dict[str, Any]:
        auth = get_auth(ctx)
        assert auth is not None
        return {"sub": auth.sub, "client_id": auth.client_id, "scopes": sorted(auth.scopes)}

    @mcp.tool
    def delete_notes() -> dict[str, str]:
        return {"result": "deleted"}

    @mcp.tool
    async def provider_profile(ctx: Context) -> dict[str, Any]:
        """Calls the provider's own API (its userinfo) as the signed-in user."""
        token = await broker.provider_token(get_auth(ctx))
        upstream = await broker._provider()
        async with httpx2.AsyncClient() as http:
            answer = await http.get(
                upstream.metadata["userinfo_endpoint"], headers={"authorization": f"Bearer {token}"}
            )
        answer.raise_for_status()
        return dict(answer.json())

    return MCPAuthMiddleware(
        mcp.http_app(stateless_http=True),
        resource=resource,
        broker=broker,
        required_scopes=["mcp"],
        tool_scopes={"delete_notes": ["notes:delete"]},
    )


def replica_from_environment() -> Any:
    """BROKER_ISSUER, BROKER_STORAGE, BROKER_SECRET, PROVIDER_ISSUER (its client: broker)."""
    issuer = os.environ["BROKER_ISSUER"]
    resource = f"{issuer.removesuffix('/oauth')}/mcp"
    upstream = oidc(os.environ["PROVIDER_ISSUER"], "broker", "broker-secret", allow_http=True)
    broker = Broker.of(issuer, upstream, [resource], [os.environ["BROKER_SECRET"]],
                       storage=os.environ["BROKER_STORAGE"], scopes_supported=["mcp", "notes:delete"])  # fmt: skip
    return protected_server(broker, resource)


app = replica_from_environment() if "BROKER_ISSUER" in os.environ else None
