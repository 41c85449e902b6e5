"""The testing kit as a user meets it: their tests of their own protected server, and the
fixtures in a project with default pytest settings."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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


USER_TEST = """
import httpx2
import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from mcp_auth_middleware import MCPAuthMiddleware


def hello(request):
    return PlainTextResponse(request.state.auth.sub)


def test_sync_with_the_server_fixture(mcp_auth_server):
    token = mcp_auth_server.mint_token(sub="sync-user", audience="https://mcp.test/mcp")
    assert token.count(".") == 2


@pytest.mark.asyncio
async def test_async_with_the_issuer_fixture(mcp_auth_issuer):
    app = MCPAuthMiddleware(
        Starlette(routes=[Route("/mcp", hello)]),
        resource="https://mcp.test/mcp",
        authorization_servers=[mcp_auth_issuer.issuer],
        validator=mcp_auth_issuer.validator(),
    )
    token = mcp_auth_issuer.mint_token(sub="carol", audience="https://mcp.test/mcp")
    transport = httpx2.ASGITransport(app=app)
    async with httpx2.AsyncClient(transport=transport, base_url="https://mcp.test") as client:
        response = await client.get("/mcp", headers={"Authorization": f"Bearer {token}"})
    assert response.text == "carol"
"""


def test_fixtures_work_in_a_project_with_default_pytest_settings(tmp_path: Path) -> None:
    # No configuration file at all: pytest-asyncio in its default (strict) mode, the kit's
    # fixtures found through the plugin entry point of the installed package.
    (tmp_path / "test_user.py").write_text(USER_TEST)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path / "test_user.py")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout[-3000:]
    assert "2 passed" in result.stdout
