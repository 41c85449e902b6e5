"""Make our `AuthInfo` visible where the MCP SDK and FastMCP look for the caller.

Both read `scope["user"]` as an `mcp.server.auth.middleware.bearer_auth.AuthenticatedUser`
(FastMCP's `get_access_token()`, the SDK's session-owner binding), and the SDK's own
`get_access_token()` reads a context variable. Without `mcp` installed we fall back to a
plain Starlette user.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, TypeVar

from starlette.authentication import BaseUser

from ..auth_info import AuthInfo
from ..lazy import computed_once

__all__ = ["AuthUser", "starlette_user", "user_context_var"]

T = TypeVar("T")


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


def _sdk_user_class() -> tuple[Callable[[AuthInfo], BaseUser] | None, ContextVar[Any] | None]:
    try:
        from mcp.server.auth.middleware.auth_context import auth_context_var
        from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
        from mcp.server.auth.provider import AccessToken
    except ImportError:
        return None, None

    class SDKUser(AuthenticatedUser):
        """The SDK's user type, built lazily: the pydantic AccessToken is made only if read."""

        def __init__(self, info: AuthInfo) -> None:  # no super().__init__: see access_token
            self.auth_info = info
            self.username = info.client_id or ""

        @computed_once
        def access_token(self) -> AccessToken:
            info = self.auth_info
            return _access_token_class(AccessToken)(
                # The SDK model requires a token string; the raw token is not passed on (no passthrough)
                # unless the operator opted in with expose_token=True.
                token=info.token or "",
                client_id=info.client_id or "",
                scopes=sorted(info.scopes),
                expires_at=info.expires_at,
                resource=info.audience[0] if info.audience else None,
                subject=info.sub,
                claims=dict(info.claims),
            )

        @computed_once
        def scopes(self) -> list[str]:
            return sorted(self.auth_info.scopes)

    return SDKUser, auth_context_var


def _access_token_class(sdk_class: type[T]) -> type[T]:
    """FastMCP's AccessToken (the SDK's, with `claims`) when FastMCP runs in this process, else
    the SDK's. FastMCP's get_access_token() turns any other AccessToken into its own through
    pydantic on every call, several times a request (telemetry, auth checks, the tool's own
    call); given its own, it returns it as it is. Looked up when a token is first read, by
    then FastMCP's app is built; FastMCP is never imported here."""
    module = sys.modules.get("fastmcp.server.auth.auth")
    fastmcp_class = getattr(module, "AccessToken", None)
    if isinstance(fastmcp_class, type) and issubclass(fastmcp_class, sdk_class):
        return fastmcp_class
    return sdk_class


_SDKUser, sdk_context_var = _sdk_user_class()

#: The caller of the current request, for code without a request object (an MCP tool).
#: One variable, set once per request: the MCP SDK's own when it is installed (so its
#: get_access_token() works too), ours otherwise.
user_context_var: ContextVar[Any] = sdk_context_var or ContextVar("mcp_auth_middleware.user", default=None)


def starlette_user(info: AuthInfo) -> BaseUser:
    """Starlette's `request.user` for a caller: an MCP SDK `AuthenticatedUser` when `mcp` is
    installed (FastMCP and the SDK read it), else a plain Starlette user. Built once per
    AuthInfo, through `info.derived(starlette_user)`."""
    return _SDKUser(info) if _SDKUser is not None else AuthUser(info)
