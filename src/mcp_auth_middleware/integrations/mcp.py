"""Make our `AuthInfo` visible where the MCP SDK and FastMCP look for the caller.

Both read `scope["user"]` as an `mcp.server.auth.middleware.bearer_auth.AuthenticatedUser`
(FastMCP's `get_access_token()`, the SDK's session-owner binding), and the SDK's own
`get_access_token()` reads a context variable. Without `mcp` installed we fall back to a
plain Starlette user.
"""

from __future__ import annotations

from contextvars import ContextVar, Token
from typing import TYPE_CHECKING, Any

from starlette.authentication import BaseUser

if TYPE_CHECKING:
    from ..auth_info import AuthInfo

__all__ = ["AuthUser", "sdk_context_var", "starlette_user"]


class AuthUser(BaseUser):
    """Starlette user for an `AuthInfo` when the MCP SDK is not installed."""

    def __init__(self, info: AuthInfo) -> None:
        self.auth_info = info

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def display_name(self) -> str:
        return self.auth_info.sub or self.auth_info.client_id or ""

    @property
    def identity(self) -> str:
        return self.display_name


def _load_sdk() -> tuple[Any, Any, ContextVar[Any] | None]:
    try:
        from mcp.server.auth.middleware.auth_context import auth_context_var
        from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
        from mcp.server.auth.provider import AccessToken
    except ImportError:
        return None, None, None
    return AccessToken, AuthenticatedUser, auth_context_var


_AccessToken, _AuthenticatedUser, sdk_context_var = _load_sdk()


def starlette_user(info: AuthInfo) -> BaseUser:
    if _AuthenticatedUser is None:
        return AuthUser(info)
    access_token = _AccessToken(
        # The SDK model requires a token string; we do not pass the raw token on (M12)
        # unless the operator opted in with expose_token=True.
        token=info.token or "",
        client_id=info.client_id or "",
        scopes=sorted(info.scopes),
        expires_at=info.expires_at,
        resource=info.audience[0] if info.audience else None,
        subject=info.sub,
        claims=dict(info.claims),
    )
    user: BaseUser = _AuthenticatedUser(access_token)
    user.auth_info = info  # type: ignore[attr-defined]
    return user


def set_sdk_user(user: BaseUser) -> Token[Any] | None:
    """Set the MCP SDK's `get_access_token()` context for this request."""
    if sdk_context_var is None or not isinstance(user, _AuthenticatedUser):
        return None
    return sdk_context_var.set(user)


def reset_sdk_user(token: Token[Any] | None) -> None:
    if token is not None and sdk_context_var is not None:
        sdk_context_var.reset(token)
