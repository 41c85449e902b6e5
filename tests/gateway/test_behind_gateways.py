"""Through real nginx and Caddy: the MCP SDK client's whole OAuth flow (discovery through the
gateway, the 401 challenge passed on, token, tools/call, 403 step-up), the identity headers
the upstream gets and cannot be forged, the denials as the client sees them."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import httpx2
import pytest
from mcp import Client
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import OAuthClientMetadata

from ..end_to_end.test_oauth_flow import Browser, MemoryStorage
from .conftest import GatewayStack, gateway_stack, modern_call, tool_result

pytestmark = pytest.mark.end_to_end

ACCEPT = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


@pytest.fixture(scope="module", params=["nginx", "caddy"])
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayStack]:
    with gateway_stack(request.param, tmp_path_factory.mktemp(request.param)) as running:
        yield running


def call(name: str, request_id: int = 1) -> tuple[dict[str, str], str]:
    """A tools/call as an MCP 2026-07-28 client sends it: the headers and the body."""
    return modern_call(name, request_id)


async def test_the_sdk_clients_oauth_flow_and_step_up_through_the_gateway(stack: GatewayStack) -> None:
    browser, storage = Browser(), MemoryStorage()
    metadata = OAuthClientMetadata(redirect_uris=["http://127.0.0.1:33418/callback"], client_name="e2e", scope="mcp")
    provider = OAuthClientProvider(
        stack.resource, metadata, storage, browser.redirect_handler, browser.callback_handler
    )
    async with (
        httpx2.AsyncClient(auth=provider, timeout=20) as http,
        Client(streamable_http_client(stack.resource, http_client=http)) as client,
    ):
        before = (await client.call_tool("whoami", {})).structured_content
        deleted = await client.call_tool("delete_notes", {})
        after = (await client.call_tool("whoami", {})).structured_content
    assert before is not None and after is not None and storage.client is not None
    assert before["x-auth-subject"] == "demo-user"
    assert before["x-auth-client-id"] == storage.client.client_id  # registered through the discovered AS
    assert before["x-auth-scopes"] == "mcp"
    assert before["x-auth-issuer"] == stack.authorization_server.issuer
    first = parse_qs(urlsplit(browser.authorize_urls[0]).query)
    assert first["resource"] == [stack.resource]  # the metadata came through the gateway (RFC 9728, RFC 8707)
    # The 403 from the service reached the client with its challenge; it stepped up by itself.
    assert not deleted.is_error and "deleted" in str(deleted.content)
    assert len(browser.authorize_urls) == 2
    assert set(parse_qs(urlsplit(browser.authorize_urls[1]).query)["scope"][0].split()) >= {"mcp", "notes:delete"}
    assert set(after["x-auth-scopes"].split()) >= {"mcp", "notes:delete"}


async def test_identity_headers_a_client_sends_never_reach_the_upstream(stack: GatewayStack) -> None:
    token = stack.authorization_server.mint_token(sub="alice", scopes=["mcp"], audience=stack.resource)
    forged = {name: "forged" for name in ("X-Auth-Subject", "X-Auth-Client-Id", "X-Auth-Issuer", "X-Auth-Assertion")}
    headers, body = call("whoami")
    async with httpx2.AsyncClient(timeout=20) as http:
        response = await http.post(
            stack.resource,
            content=body,
            headers={**headers, **forged, "X-Auth-Scopes": "notes:delete", "Authorization": f"Bearer {token}"},
        )
        escalate_headers, escalate_body = call("delete_notes", 2)
        escalation = await http.post(
            stack.resource,
            content=escalate_body,
            headers={**escalate_headers, "X-Auth-Scopes": "mcp notes:delete", "Authorization": f"Bearer {token}"},
        )
    assert response.status_code == 200, response.text
    seen = tool_result(response)
    assert seen["x-auth-subject"] == "alice"
    assert seen["x-auth-client-id"] == "test-client"
    assert seen["x-auth-scopes"] == "mcp"
    assert seen["x-auth-issuer"] == stack.authorization_server.issuer
    # The service signs none here: the client's is removed (nginx) or emptied (Caddy copies the empty one).
    assert not seen["x-auth-assertion"]
    assert escalation.status_code == 403


async def test_denials_reach_the_client_with_their_challenges(stack: GatewayStack) -> None:
    narrow = stack.authorization_server.mint_token(sub="alice", scopes=["mcp"], audience=stack.resource)
    other = stack.authorization_server.mint_token(sub="alice", scopes=["mcp"], audience="https://other.example/mcp")
    metadata_url = stack.resource.replace("/mcp", "/.well-known/oauth-protected-resource/mcp")
    async with httpx2.AsyncClient(timeout=20) as http:
        headers, body = call("whoami")
        unauthenticated = await http.post(stack.resource, content=body, headers=headers)
        wrong_audience = await http.post(
            stack.resource, content=body, headers={**headers, "Authorization": f"Bearer {other}"}
        )
        headers, body = call("delete_notes")
        insufficient = await http.post(
            stack.resource, content=body, headers={**headers, "Authorization": f"Bearer {narrow}"}
        )
        old_client = await http.post(
            stack.resource, content=body, headers={**ACCEPT, "Authorization": f"Bearer {narrow}"}
        )
        document = await http.get(metadata_url)
        # A path the gateway reads as /mcp, and a prefix rule (or the upstream) as another.
        ambiguous = await http.post(
            stack.resource.replace("/mcp", "/mcp/%2e%2e/mcp"),
            content=body,
            headers={**headers, "Authorization": f"Bearer {narrow}"},
        )
    assert unauthenticated.status_code == 401
    assert unauthenticated.headers.get_list("www-authenticate") == [
        f'Bearer scope="mcp", resource_metadata="{metadata_url}"'
    ]  # once: nginx copies a 401's challenge, and the configuration adds none of its own
    assert wrong_audience.status_code == 401
    assert 'error="invalid_token"' in wrong_audience.headers["www-authenticate"]
    assert insufficient.status_code == 403
    challenge = insufficient.headers["www-authenticate"]
    assert 'error="insufficient_scope"' in challenge and "notes:delete" in challenge
    # Per-tool rules exist and the request does not name its tool: refused (the default).
    assert old_client.status_code == 400
    assert 'error="invalid_request"' in old_client.headers["www-authenticate"]
    assert document.status_code == 200 and document.json()["resource"] == stack.resource
    assert ambiguous.status_code == 400 and ambiguous.json()["error"] == "invalid_request"  # the service's
    for response in (unauthenticated, wrong_audience, insufficient, old_client):
        assert narrow not in response.text and other not in response.text
