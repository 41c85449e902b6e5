"""What can go wrong when a tool asks for a token for another API, as exceptions a tool can
catch: the authorization server refused (RFC 6749 §5.2, RFC 8693 §2.2.2), could not be
reached, or answered outside the protocol. No message ever holds a token."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = [
    "ERRORS",
    "ExchangeRefusedError",
    "ExchangeResponseError",
    "ExchangeUnavailableError",
    "InteractionRequiredError",
    "InvalidClientError",
    "InvalidGrantError",
    "InvalidScopeError",
    "InvalidTargetError",
    "NoCallerError",
    "TokenExchangeError",
    "UnauthorizedClientError",
]


class TokenExchangeError(Exception):
    """Any failure to get a token for a downstream API."""

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


class NoCallerError(TokenExchangeError):
    """There is no authenticated caller (or no token of theirs) to exchange: the source passed
    is not a request the middleware authenticated."""


class ExchangeRefusedError(TokenExchangeError):
    """The authorization server answered with an OAuth error (RFC 6749 §5.2): asking again
    the same way gets the same answer."""

    #: The RFC 6749 §5.2 / RFC 8693 §2.2.2 error code this class stands for.
    code = ""

    def __init__(self, error: str, description: str | None = None, *, status: int = 400, **extra: Any) -> None:
        said = f": {description}" if description else ""
        super().__init__(f"the authorization server refused the token exchange: {error}{said}")
        self.error, self.error_description, self.status = error, description, status
        #: Other members of the error answer (Entra: `error_codes`, `suberror`, `claims`).
        self.extra: Mapping[str, Any] = extra


class InvalidGrantError(ExchangeRefusedError):
    """The caller's token cannot be exchanged: expired, revoked, not issued to this server, or
    (Entra) the user must consent or sign in again. The caller must get a new token."""

    code = "invalid_grant"


class InvalidTargetError(ExchangeRefusedError):
    """This server may not get tokens for that downstream `resource` or `audience` (RFC 8693
    §2.2.2): a policy at the authorization server, or a misspelled target."""

    code = "invalid_target"


class InvalidScopeError(ExchangeRefusedError):
    """More (or other) scope was asked than the caller's grant allows: exchange only narrows."""

    code = "invalid_scope"


class InvalidClientError(ExchangeRefusedError):
    """This server's client credentials were refused: a configuration problem, not the caller's."""

    code = "invalid_client"


class UnauthorizedClientError(ExchangeRefusedError):
    """This server's client may not use the grant (token exchange is not enabled for it)."""

    code = "unauthorized_client"


class InteractionRequiredError(ExchangeRefusedError):
    """The user must sign in again or consent (Entra's `interaction_required`,
    `consent_required`): `extra["claims"]` is the claims challenge to hand to the client."""

    code = "interaction_required"


class ExchangeUnavailableError(TokenExchangeError):
    """The authorization server could not be asked (unreachable, timeout, 5xx, 429): try again
    later; nothing is wrong with the caller's token."""

    def __init__(self, description: str, *, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.retry_after = retry_after


class ExchangeResponseError(TokenExchangeError):
    """The authorization server answered, but not as RFC 8693 §2.2 says (a 200 without
    `access_token`, an `issued_token_type` that is no access token, a page that is not JSON)."""


#: Error code -> its class; codes not listed are an ExchangeRefusedError.
ERRORS: Mapping[str, type[ExchangeRefusedError]] = {
    cls.code: cls
    for cls in (
        InvalidGrantError,
        InvalidTargetError,
        InvalidScopeError,
        InvalidClientError,
        UnauthorizedClientError,
        InteractionRequiredError,
    )
} | {"consent_required": InteractionRequiredError, "login_required": InteractionRequiredError}
