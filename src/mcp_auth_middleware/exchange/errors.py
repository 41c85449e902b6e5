"""What can go wrong when a tool asks for a token for another API, as exceptions a tool can
catch: the authorization server refused (RFC 6749 §5.2, RFC 8693 §2.2.2), could not be
reached, or answered outside the protocol. No message ever holds a token."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "ERRORS",
    "INTERACTION_SUBERRORS",
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
    "redact",
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
#: Entra's `suberror` values of an `invalid_grant` that mean the user must act (consent, sign
#: in again): an InteractionRequiredError, whose `claims` challenge goes to the client.
INTERACTION_SUBERRORS = frozenset({"consent_required", "login_required", "basic_action", "additional_action"})

#: A JWT (three base64url parts, the first a JSON header) or a long run of token characters
#: (an opaque token); a UUID (Entra's trace and correlation ids) is not one.
_TOKEN_SHAPED = re.compile(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*|[A-Za-z0-9_~+=.-]{32,}")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """`text` from an authorization server without the tokens it was sent (`secrets`) and
    without anything shaped as a token: an error description that quotes the caller's token
    must not carry it into an exception, a log line or a tool's error shown to the client."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[token]")
    return _TOKEN_SHAPED.sub(lambda m: m.group() if _UUID.fullmatch(m.group()) else "[token]", text)
