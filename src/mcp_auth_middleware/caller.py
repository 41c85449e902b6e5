"""`get_auth`: the caller of the request being handled, from wherever the code runs (a route, an
MCP tool's context, or nowhere in particular)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .auth_info import AuthInfo
from .integrations.mcp import user_context_var

__all__ = ["current_auth", "get_auth", "scope_of"]


def current_auth() -> AuthInfo | None:
    """The caller of the request being handled (set by the middleware for its duration)."""
    info = getattr(user_context_var.get(), "auth_info", None)
    return info if isinstance(info, AuthInfo) else None


def get_auth(source: Any = None) -> AuthInfo | None:
    """The caller's `AuthInfo`, or None when the request was not authenticated.

    `source` may be a Starlette `Request`/`HTTPConnection`, an ASGI scope, an MCP SDK or
    FastMCP tool `Context`, or omitted (then the current request's context is used).
    """
    if source is None:
        return current_auth()
    scope = scope_of(source)
    if scope is None:
        return current_auth()
    state = scope.get("state")
    auth = state.get("auth") if isinstance(state, Mapping) else None
    return auth if isinstance(auth, AuthInfo) else None


def scope_of(source: Any) -> Mapping[str, Any] | None:
    if isinstance(source, Mapping):
        return source
    scope = getattr(source, "scope", None)
    if isinstance(scope, Mapping):
        return scope
    # MCP SDK and FastMCP tool contexts carry the Starlette request on their request context.
    try:
        request = source.request_context.request
    except (AttributeError, LookupError, ValueError, RuntimeError):
        return None
    scope = getattr(request, "scope", None)
    return scope if isinstance(scope, Mapping) else None
