"""The example from docs/testing.md, run as written: a user's tests of their own protected server."""

from __future__ import annotations

import httpx2
from fastmcp import FastMCP
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from mcp_auth_middleware import MCPAuthMiddleware, get_auth
from mcp_auth_middleware.server import LocalAuthorizationServer
from mcp_auth_middleware.testing import LocalIssuer, free_port, serve

mcp = FastMCP("notes")


@mcp.tool
def whoami() -> str:
    auth = get_auth()
    return auth.sub if auth else "nobody"


async def test_my_server_with_a_real_authorization_server(mcp_auth_server: LocalAuthorizationServer) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/mcp"
    app = MCPAuthMiddleware(mcp.http_app(), resource=url, issuer=mcp_auth_server.issuer)
    token = mcp_auth_server.mint_token(sub="alice", scopes=["mcp"], audience=url)
    with serve(app, port=port):
        async with (
            httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}) as http,
            Client(streamable_http_client(url, http_client=http)) as client,
        ):
            result = await client.call_tool("whoami", {})
    assert result.content[0].text == "alice"  # type: ignore[union-attr]


async def test_my_server_with_opaque_tokens(mcp_auth_server_opaque: LocalAuthorizationServer) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/mcp"
    mcp_auth_server_opaque.register_resource_server("my-server", "my-secret", [url])
    app = MCPAuthMiddleware(
        mcp.http_app(),
        resource=url,
        issuer=mcp_auth_server_opaque.issuer,
        token_validation="introspection",
        client_id="my-server",
        client_secret="my-secret",
    )
    token = mcp_auth_server_opaque.mint_token(sub="bob", scopes=["mcp"], audience=url)
    with serve(app, port=port):
        async with (
            httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}) as http,
            Client(streamable_http_client(url, http_client=http)) as client,
        ):
            result = await client.call_tool("whoami", {})
    assert result.content[0].text == "bob"  # type: ignore[union-attr]


async def test_in_process_without_any_server(mcp_auth_issuer: LocalIssuer) -> None:
    async def hello(scope, receive, send):  # type: ignore[no-untyped-def]
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": scope["state"]["auth"].sub.encode()})

    app = MCPAuthMiddleware(
        hello,
        resource="https://mcp.test/mcp",
        authorization_servers=[mcp_auth_issuer.issuer],
        validator=mcp_auth_issuer.validator(),
    )
    token = mcp_auth_issuer.mint_token(sub="carol", audience="https://mcp.test/mcp")
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="https://mcp.test") as client:
        assert (await client.get("/mcp", headers={"Authorization": f"Bearer {token}"})).text == "carol"
        assert (await client.get("/mcp")).status_code == 401
