"""Typed errors a validator raises; the middleware turns each into one HTTP answer.

Every `description` is a fixed string chosen by us, never text derived from the request, so
it is always safe to put into a `WWW-Authenticate` header (B3).
"""

from __future__ import annotations

__all__ = [
    "AuthError",
    "AuthorizationServerUnavailableError",
    "InsufficientScopeError",
    "InvalidRequestError",
    "InvalidTokenError",
    "TooManyFailuresError",
]


class AuthError(Exception):
    """Base class: `error` is the RFC 6750 error code, `status` the HTTP status."""

    error: str = "invalid_token"
    status: int = 401

    def __init__(self, description: str = "The access token is invalid") -> None:
        super().__init__(description)
        self.description = description


class InvalidRequestError(AuthError):
    """The request itself is malformed (B1): 400 `invalid_request`."""

    error = "invalid_request"
    status = 400


class InvalidTokenError(AuthError):
    """Expired, revoked, malformed, or not for this resource (M09, M10): 401 `invalid_token`."""


class InsufficientScopeError(AuthError):
    """The token is good but lacks scopes (M14): 403 `insufficient_scope` naming `scopes`."""

    error = "insufficient_scope"
    status = 403

    def __init__(
        self,
        scopes: frozenset[str] | set[str] | tuple[str, ...],
        description: str = "The access token lacks a required scope",
    ) -> None:
        super().__init__(description)
        self.scopes = frozenset(scopes)


class TooManyFailuresError(AuthError):
    """This caller failed authentication too often (token guessing): 429 + `Retry-After`."""

    error = "too_many_requests"
    status = 429

    def __init__(self, retry_after: int) -> None:
        super().__init__("Too many failed authentication attempts")
        self.retry_after = retry_after


class AuthorizationServerUnavailableError(AuthError):
    """Keys or introspection could not be reached: 503 + `Retry-After`, never 401.

    A 401 would make MCP clients discard a good token and restart the OAuth flow.
    """

    error = "temporarily_unavailable"
    status = 503

    def __init__(self, description: str = "The authorization server is unavailable", retry_after: int = 5) -> None:
        super().__init__(description)
        self.retry_after = retry_after
