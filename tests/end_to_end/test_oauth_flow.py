"""End to end: the MCP SDK client with its OAuth providers against the demo stack on 127.0.0.1.

401 -> protected resource metadata -> AS metadata -> dynamic registration -> authorize with
PKCE and `resource` -> token -> MCP calls; client_credentials; refresh after expiry.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx2
import pytest
from mcp import Client
from mcp.client.auth import OAuthClientProvider
from mcp.client.auth.extensions.client_credentials import ClientCredentialsOAuthProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientInformationFull, OAuthClientMetadata, OAuthToken

from mcp_auth_middleware.demo import DemoStack, demo_stack
from mcp_auth_middleware.testing import free_port

pytestmark = pytest.mark.end_to_end


class MemoryStorage:
    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client = client_info


class Browser:
    """Follows the authorize redirect as a browser would, without a browser (auto-approval)."""

    def __init__(self) -> None:
        self.callback: dict[str, str] = {}
        self.authorize_urls: list[str] = []

    async def redirect_handler(self, url: str) -> None:
        self.authorize_urls.append(url)
        async with httpx2.AsyncClient() as http:
            response = await http.get(url)
        assert response.status_code == 302, response.text
        self.callback = {k: v[0] for k, v in parse_qs(urlsplit(response.headers["location"]).query).items()}

    async def callback_handler(self) -> AuthorizationCodeResult:
        return AuthorizationCodeResult(
            code=self.callback["code"], state=self.callback.get("state"), iss=self.callback.get("iss")
        )


def oauth_provider(stack: DemoStack, browser: Browser, storage: MemoryStorage, scope: str = "mcp") -> Any:
    metadata = OAuthClientMetadata(redirect_uris=["http://127.0.0.1:33418/callback"], client_name="e2e", scope=scope)
    return OAuthClientProvider(stack.resource, metadata, storage, browser.redirect_handler, browser.callback_handler)


async def whoami(stack: DemoStack, auth: Any) -> dict[str, Any]:
    async with (
        httpx2.AsyncClient(auth=auth, timeout=20) as http,
        Client(streamable_http_client(stack.resource, http_client=http)) as client,
    ):
        result = await client.call_tool("whoami", {})
    assert result.structured_content is not None
    return result.structured_content


@pytest.fixture(scope="module", params=["jwt", "opaque"])
def stack(request: pytest.FixtureRequest) -> Iterator[DemoStack]:
    with demo_stack(port=free_port(), as_port=free_port(), token_format=request.param, access_token_ttl=3) as s:
        yield s


async def test_authorization_code_flow_end_to_end(stack: DemoStack) -> None:
    browser, storage = Browser(), MemoryStorage()
    identity = await whoami(stack, oauth_provider(stack, browser, storage))
    assert identity["sub"] == "demo-user"
    assert storage.client is not None and identity["client_id"] == storage.client.client_id  # registered (RFC 7591)
    assert identity["scopes"] == ["mcp"]
    query = parse_qs(urlsplit(browser.authorize_urls[0]).query)
    assert query["code_challenge_method"] == ["S256"]
    assert query["resource"] == [stack.resource]  # RFC 8707


async def test_refresh_after_the_access_token_expires(stack: DemoStack) -> None:
    browser, storage = Browser(), MemoryStorage()
    provider = oauth_provider(stack, browser, storage)
    first = await whoami(stack, provider)
    assert storage.tokens is not None
    old_access, old_refresh = storage.tokens.access_token, storage.tokens.refresh_token
    await asyncio.sleep(3.5)  # access tokens live 3 s in this stack
    second = await whoami(stack, provider)
    assert second["sub"] == first["sub"] == "demo-user"
    assert storage.tokens.access_token != old_access
    assert storage.tokens.refresh_token != old_refresh  # rotated
    assert len(browser.authorize_urls) == 1  # refreshed, not re-authorized


async def test_client_credentials_flow(stack: DemoStack) -> None:
    stack.authorization_server.register_client(
        client_id="batch-job", client_secret="batch-secret", grant_types=["client_credentials"]
    )
    provider = ClientCredentialsOAuthProvider(
        stack.resource, MemoryStorage(), "batch-job", "batch-secret", scope="mcp", issuer=stack.issuer
    )
    identity = await whoami(stack, provider)
    assert identity["client_id"] == "batch-job"
    assert identity["scopes"] == ["mcp"]


async def test_step_up_on_403_insufficient_scope(stack: DemoStack) -> None:
    """A narrow token calls a privileged tool, the SDK client re-authorizes for the
    challenged scope by itself (SEP-2350 step-up), and the retried call succeeds."""
    browser, storage = Browser(), MemoryStorage()
    provider = oauth_provider(stack, browser, storage, scope="mcp")
    async with (
        httpx2.AsyncClient(auth=provider, timeout=20) as http,
        Client(streamable_http_client(stack.resource, http_client=http)) as client,
    ):
        before = (await client.call_tool("whoami", {})).structured_content
        deleted = await client.call_tool("delete_notes", {})
        after = (await client.call_tool("whoami", {})).structured_content
    assert before is not None and after is not None
    assert before["scopes"] == ["mcp"]
    assert not deleted.is_error and "deleted" in str(deleted.content)
    assert "notes:delete" in after["scopes"] and "mcp" in after["scopes"]
    assert len(browser.authorize_urls) == 2
    second = parse_qs(urlsplit(browser.authorize_urls[1]).query)
    assert set(second["scope"][0].split()) >= {"mcp", "notes:delete"}


# -- Client ID Metadata Documents (MCP authorization 2025-11-25) --------------------------------


async def test_client_id_metadata_document_flow(stack: DemoStack, client_metadata_host: tuple[str, Any]) -> None:
    from mcp_auth_middleware.server.client_metadata import ClientMetadataDocuments

    url, trust = client_metadata_host
    # development: the document is on loopback, which is refused otherwise (SSRF)
    documents = ClientMetadataDocuments(http_client=httpx2.AsyncClient(verify=trust), development=True)
    stack.authorization_server.client_metadata = documents
    browser, storage = Browser(), MemoryStorage()
    metadata = OAuthClientMetadata(redirect_uris=["http://127.0.0.1:33418/callback"], client_name="e2e", scope="mcp")
    provider = OAuthClientProvider(
        stack.resource, metadata, storage, browser.redirect_handler, browser.callback_handler, client_metadata_url=url
    )
    identity = await whoami(stack, provider)
    assert identity["client_id"] == url  # no registration: the document's URL is the client id
    assert parse_qs(urlsplit(browser.authorize_urls[0]).query)["client_id"] == [url]
    assert documents.fetches == 1  # cached per its Cache-Control for the token request
    await documents.aclose()
