"""The small protocol every validator satisfies, so users can plug their own."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from ..auth_info import AuthInfo

__all__ = ["ResourceBound", "TokenValidator"]


@runtime_checkable
class TokenValidator(Protocol):
    """`validate` returns the caller's AuthInfo or raises InvalidTokenError (401),
    InsufficientScopeError (403) or AuthorizationServerUnavailableError (503)."""

    async def validate(self, token: str) -> AuthInfo: ...


@runtime_checkable
class ResourceBound(Protocol):
    """A validator that can take its audience from the middleware's `resource`."""

    def bind_resource(self, resource: str) -> None: ...
