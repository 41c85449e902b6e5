"""What the MCP SDK and FastMCP see of the caller, and the fallback without the SDK."""

from __future__ import annotations

from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser, authorization_context

from mcp_auth_middleware import AuthInfo
from mcp_auth_middleware.integrations.mcp import AuthUser, starlette_user

INFO = AuthInfo(
    sub="alice",
    client_id="app",
    scopes=frozenset({"b", "a"}),
    issuer="https://as",
    audience=("https://mcp.example.com/mcp",),
    expires_at=2_000_000_000,
    claims={"iss": "https://as"},
)


def test_sdk_user_carries_an_access_token_without_the_raw_token() -> None:
    user = starlette_user(INFO)
    assert isinstance(user, AuthenticatedUser)
    token = user.access_token
    assert (token.client_id, token.subject, token.scopes, token.expires_at) == (
        "app",
        "alice",
        ["a", "b"],
        2_000_000_000,
    )
    assert token.token == ""  # no token passthrough (MCP authorization, Token Handling) unless expose_token
    assert token.resource == "https://mcp.example.com/mcp"
    # The SDK binds sessions to this principal.
    assert authorization_context(user) == {"client_id": "app", "issuer": "https://as", "subject": "alice"}


def test_fastmcp_reads_the_access_token_as_it_is() -> None:
    """With FastMCP in the process, the token is FastMCP's own AccessToken (a subclass of the
    SDK's), so FastMCP's get_access_token() hands it over instead of rebuilding it through
    pydantic on every call."""
    from fastmcp.server.auth import AccessToken as FastMCPAccessToken
    from fastmcp.server.dependencies import get_access_token
    from mcp.server.auth.provider import AccessToken as SDKAccessToken

    from mcp_auth_middleware.integrations.mcp import user_context_var

    user = starlette_user(INFO)
    reset = user_context_var.set(user)
    try:
        seen = get_access_token()
    finally:
        user_context_var.reset(reset)
    assert isinstance(user, AuthenticatedUser)
    assert seen is user.access_token
    assert isinstance(seen, FastMCPAccessToken) and isinstance(seen, SDKAccessToken)
    assert seen.claims == {"iss": "https://as"} and seen.subject == "alice"


def test_plain_starlette_user_without_the_sdk() -> None:
    user = AuthUser(INFO)
    assert user.is_authenticated and user.display_name == "alice" and user.auth_info is INFO
