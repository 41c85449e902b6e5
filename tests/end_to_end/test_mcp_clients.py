"""Real uvicorn servers on 127.0.0.1, driven by the MCP SDK's streamable-HTTP client."""

from __future__ import annotations

from collections.abc import Iterator

import httpx2
import pytest
from mcp import Client
from mcp.client.auth.utils import (
    build_protected_resource_metadata_discovery_urls,
    extract_resource_metadata_from_www_auth,
    extract_scope_from_www_auth,
    handle_protected_resource_response,
)
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth_utils import check_resource_allowed, resource_url_from_server_url
from mcp.shared.exceptions import MCPError

from mcp_auth_middleware.server import LocalAuthorizationServer
from mcp_auth_middleware.testing import running_authorization_server

from .test_examples import example

pytestmark = pytest.mark.end_to_end


@pytest.fixture(scope="module")
def issuer() -> Iterator[LocalAuthorizationServer]:
    with running_authorization_server(scopes_supported=["mcp", "extra", "other"]) as server:
        yield server


@pytest.fixture(scope="module", params=["fastmcp_server", "mcp_sdk_server"])
def server(request: pytest.FixtureRequest, issuer: LocalAuthorizationServer) -> Iterator[str]:
    """The example run as a process (it requires the scope `mcp`)."""
    with example(request.param, issuer.issuer, "/mcp") as url:
        yield url


def connect(url: str, token: str | None, mode: str = "auto") -> Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    http = httpx2.AsyncClient(headers=headers, timeout=10)
    return Client(streamable_http_client(url, http_client=http), mode=mode)


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_valid_token_tool_sees_identity(server: str, issuer: LocalAuthorizationServer, mode: str) -> None:
    token = issuer.mint_token(audience=server, sub="alice", client_id="inspector", scopes=["mcp", "extra"])
    async with connect(server, token, mode) as client:
        tools = await client.list_tools()
        assert "whoami" in [t.name for t in tools.tools]
        result = await client.call_tool("whoami", {})
    identity = result.structured_content
    assert identity is not None
    assert identity["sub"] == "alice"
    assert identity["client_id"] == "inspector"
    assert identity["scopes"] == ["extra", "mcp"]
    if "sdk_client_id" in identity:  # the MCP SDK's own get_access_token() sees it too
        assert identity["sdk_client_id"] == "inspector"


@pytest.mark.parametrize("case", ["none", "garbage", "wrong_audience", "expired"])
async def test_bad_or_missing_token_never_reaches_the_server(
    server: str, issuer: LocalAuthorizationServer, case: str
) -> None:
    token = {
        "none": None,
        "garbage": "garbage",
        "wrong_audience": issuer.mint_token(audience="http://127.0.0.1:1/mcp", scopes=["mcp"]),
        "expired": issuer.mint_token(audience=server, scopes=["mcp"], expires_in=-300),
    }[case]
    with pytest.raises(ExceptionGroup) as caught:
        async with connect(server, token) as client:
            await client.list_tools()
    assert caught.group_contains(MCPError)  # the SDK client surfaces the refused request
    # The HTTP answer itself, checked directly:
    async with httpx2.AsyncClient() as http:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = await http.post(server, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, headers=headers)
    assert response.status_code == 401
    assert ("error=" in response.headers["www-authenticate"]) == (token is not None)


async def test_sdk_discovers_protected_resource_metadata(server: str, issuer: LocalAuthorizationServer) -> None:
    async with httpx2.AsyncClient() as http:
        challenge = await http.post(server, json={})
        assert challenge.status_code == 401
        assert extract_scope_from_www_auth(challenge) == "mcp"
        header_url = extract_resource_metadata_from_www_auth(challenge)
        assert header_url is not None
        urls = build_protected_resource_metadata_discovery_urls(header_url, server)
        for url in urls:  # header, path-inserted, root: every one must work (RFC 9728 §3.1, §5.1)
            metadata = await handle_protected_resource_response(await http.get(url))
            assert metadata is not None
            assert check_resource_allowed(resource_url_from_server_url(server), str(metadata.resource))
            assert [str(s).rstrip("/") for s in metadata.authorization_servers] == [issuer.issuer]


async def test_insufficient_scope_403(server: str, issuer: LocalAuthorizationServer) -> None:
    token = issuer.mint_token(audience=server, scopes=["other"])
    async with httpx2.AsyncClient() as http:
        response = await http.post(server, json={}, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 403
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]
    assert 'scope="mcp"' in response.headers["www-authenticate"]
