"""Typed errors a validator raises; the middleware turns each into one HTTP answer.

Every `description` is a fixed string chosen by us, never text derived from the request, so
it is always safe to put into a `WWW-Authenticate` header (RFC 6750 §3).
"""

from __future__ import annotations

__all__ = [
    "AuthError",
    "AuthorizationServerUnavailableError",
    "BodyTooLargeError",
    "ConfigurationError",
    "DiscoveryError",
    "InsufficientScopeError",
    "InvalidRequestError",
    "InvalidTokenError",
    "TooManyFailuresError",
    "shown",
]


class AuthError(Exception):
    """Base class: `error` is the RFC 6750 error code, `status` the HTTP status.

    `description` goes into the challenge and must not carry request input. `detail` is for
    the operator's log only: the failing check in words, with the values involved (expected
    and found), so that a denial says why where the operator looks.
    """

    error: str = "invalid_token"
    status: int = 401
    #: Logged at WARNING (shown under plain uvicorn) when the cause is likely a configuration
    #: mismatch between this server and the authorization server; else at INFO.
    mismatch: bool = False

    def __init__(
        self,
        description: str = "The access token is invalid",
        *,
        detail: str | None = None,
        mismatch: bool | None = None,
    ) -> None:
        super().__init__(description)
        self.description = description
        self.detail = detail
        if mismatch is not None:
            self.mismatch = mismatch


class InvalidRequestError(AuthError):
    """The request itself is malformed (RFC 6750 §2, §3.1): 400 `invalid_request`."""

    error = "invalid_request"
    status = 400


class InvalidTokenError(AuthError):
    """Expired, revoked, malformed, or not for this resource (MCP authorization, Token
    Handling): 401 `invalid_token`.

    `guess=False` marks a token the authorization server really issued (its signature
    verified, or introspection called it active) that fails a later check: expired, another
    audience. That is a client's or an operator's mistake, not token guessing, and does not
    count toward the guessing guard.
    """

    def __init__(
        self,
        description: str = "The access token is invalid",
        *,
        detail: str | None = None,
        mismatch: bool | None = None,
        guess: bool = True,
    ) -> None:
        super().__init__(description, detail=detail, mismatch=mismatch)
        self.guess = guess


class InsufficientScopeError(AuthError):
    """The token is good but lacks scopes: 403 `insufficient_scope` naming `scopes` (MCP
    authorization, Scope Challenge Handling)."""

    error = "insufficient_scope"
    status = 403

    def __init__(
        self,
        scopes: frozenset[str] | set[str] | tuple[str, ...],
        description: str = "The access token lacks a required scope",
        *,
        detail: str | None = None,
    ) -> None:
        super().__init__(description, detail=detail)
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

    def __init__(
        self,
        description: str = "The authorization server is unavailable",
        retry_after: int = 5,
        *,
        detail: str | None = None,
    ) -> None:
        super().__init__(description, detail=detail)
        self.retry_after = retry_after


class DiscoveryError(AuthorizationServerUnavailableError):
    """The authorization server could not be reached for its metadata (RFC 8414): 503, retry later."""


class BodyTooLargeError(AuthError):
    """A form or JSON-RPC body past its configured limit: 413."""

    error = "invalid_request"
    status = 413

    def __init__(self) -> None:
        super().__init__("The request body is too large")


class ConfigurationError(AuthError):
    """This server's configuration cannot work with its authorization server: an issuer that
    differs from the one in the metadata, a key set without usable keys, credentials the
    introspection endpoint refuses, no audience. 503 without `Retry-After` (waiting does not
    help) and an ERROR log line with `detail`, the expected and the found values.
    """

    error = "server_misconfigured"
    status = 503
    mismatch = True

    def __init__(
        self,
        detail: str,
        description: str = "The server is misconfigured for authorization; its log says why",
    ) -> None:
        super().__init__(description, detail=detail)


def mismatch_hint(expected: str, found: object) -> str:
    """Why two URLs that look alike are not equal, for a log line: identifiers are compared
    exactly (RFC 8414 §3.3, RFC 9068 §4), so a trailing slash or another host name matters."""
    if not isinstance(found, str):
        return ""
    if expected.rstrip("/") == found.rstrip("/"):
        return " (they differ only in a trailing slash)"
    scheme_e, _, rest_e = expected.partition("://")
    scheme_f, _, rest_f = found.partition("://")
    if rest_e == rest_f and scheme_e != scheme_f:
        return " (they differ in scheme: http vs https)"
    loopback = ("localhost", "127.0.0.1", "[::1]")
    if any(a in rest_e and b in rest_f for a in loopback for b in loopback if a != b):
        return " (localhost and 127.0.0.1 are different names: use the one the authorization server uses)"
    return ""


def shown(value: object, limit: int = 120) -> str:
    """A value from a token or a response, as a log `detail` may quote it: repr (so no line
    breaks or control characters reach the log), truncated."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
