"""Configuration values as users write them: one string or a list; URLs that cannot work refused."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from mcp_auth_middleware import JWTValidator, MCPAuthMiddleware
from mcp_auth_middleware.testing import LocalIssuer
from mcp_auth_middleware.values import check_server_url, word_list

from .conftest import ISSUER, RESOURCE, asgi_client, bearer, echo_app

Factory = Callable[..., MCPAuthMiddleware]


@pytest.mark.parametrize(
    ("value", "expected"),
    [("mcp", ["mcp"]), ("mcp  notes:read", ["mcp", "notes:read"]), (["mcp"], ["mcp"]), ((), []), (None, [])],
)
def test_word_list_reads_one_string_as_space_separated(value: object, expected: list[str]) -> None:
    assert word_list(value) == expected  # type: ignore[arg-type]


async def test_required_scopes_as_one_string_is_that_scope(make_app: Factory, issuer: LocalIssuer) -> None:
    app = make_app(required_scopes="mcp", tool_scopes={"delete": "notes:delete notes:write"})
    assert app.required_scopes == {"mcp"}  # not {"m", "c", "p"}
    async with asgi_client(app) as client:
        challenge = (await client.post("/mcp")).headers["www-authenticate"]
        document = (await client.get("/.well-known/oauth-protected-resource/mcp")).json()
        ok = await client.post("/mcp", headers=bearer(issuer.mint_token(audience=RESOURCE, scopes="mcp")))
    assert 'scope="mcp"' in challenge
    assert document["scopes_supported"] == ["mcp", "notes:delete", "notes:write"]
    assert ok.status_code == 200


async def test_list_options_accept_one_string(issuer: LocalIssuer) -> None:
    app = MCPAuthMiddleware(
        echo_app(),
        resource=RESOURCE,
        authorization_servers=ISSUER,
        validator=issuer.validator(scope_claims="permissions"),
        public_paths="/health",
        trusted_proxies="10.0.0.0/8",
    )
    token = issuer.mint_token(audience=RESOURCE, permissions=["read:notes"])
    async with asgi_client(app) as client:
        document = (await client.get("/.well-known/oauth-protected-resource")).json()
        assert document["authorization_servers"] == [ISSUER]
        assert (await client.get("/health")).status_code == 200
        assert (await client.post("/mcp", headers=bearer(token))).json()["scopes"] == ["read:notes"]


@pytest.mark.parametrize(
    ("name", "url", "message"),
    [
        ("resource", "", "non-empty"),
        ("resource", "   ", "non-empty"),
        ("resource", "https://mcp.example.com/mcp?tenant=a", "query or fragment"),
        ("resource", "https://mcp.example.com/mcp#x", "query or fragment"),
        ("resource", "http://mcp.example.com/mcp", "plain http"),
        ("resource", "mcp.example.com/mcp", "absolute"),
        ("issuer", "https://auth.example.com/?realm=a", "query or fragment"),
        ("issuer", "http://auth.example.com", "plain http"),
        ("issuer", "ftp://auth.example.com", "must be an https URL"),
        # http is allowed on loopback: the message for a relative resource must not say "https only"
        (
            "resource",
            "/mcp",
            r"not an absolute URL: write it in full, scheme and host included \(https://host/path; "
            "plain http only on loopback",
        ),
    ],
)
def test_construction_refuses_urls_that_cannot_work(name: str, url: str, message: str) -> None:
    options = {"resource": RESOURCE, "issuer": ISSUER, name: url}
    with pytest.raises(ValueError, match=message):
        MCPAuthMiddleware(echo_app(), **options)


@pytest.mark.parametrize("url", ["http://127.0.0.1:8000/mcp", "http://localhost/mcp", "http://[::1]:9000/mcp"])
def test_loopback_http_is_fine(url: str) -> None:
    assert check_server_url("resource", url) == url


def test_plain_http_on_a_private_network_is_one_option() -> None:
    app = MCPAuthMiddleware(
        echo_app(), resource="http://mcp.internal/mcp", issuer="http://auth.internal", allow_http=True
    )
    assert app.resource == "http://mcp.internal/mcp"
    from_env = MCPAuthMiddleware.from_env(
        echo_app(),
        {
            "MCP_AUTH_RESOURCE": "http://mcp.internal/mcp",
            "MCP_AUTH_ISSUER": "http://auth.internal",
            "MCP_AUTH_ALLOW_HTTP": "1",
        },
    )
    assert from_env.resource == "http://mcp.internal/mcp"


async def test_validator_options_accept_one_string(issuer: LocalIssuer) -> None:
    validator = JWTValidator(
        issuer=ISSUER, audience=RESOURCE, keys=issuer.jwks, algorithms="RS256", client_id_claims="azp"
    )
    info = await validator.validate(issuer.mint_token(audience=RESOURCE, azp="spa"))
    assert validator.algorithms == ("RS256",) and info.client_id == "spa"
