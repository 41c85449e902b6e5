"""Calling other APIs for the caller without passing their token on: RFC 8693 token exchange
(and Entra's on-behalf-of flow), cached, one call away in a tool. See docs/calling-other-apis.md."""

from .client import TokenExchange, caller_token
from .errors import (
    ExchangeRefusedError,
    ExchangeResponseError,
    ExchangeUnavailableError,
    InteractionRequiredError,
    InvalidClientError,
    InvalidGrantError,
    InvalidScopeError,
    InvalidTargetError,
    NoCallerError,
    TokenExchangeError,
    UnauthorizedClientError,
)
from .grants import ACCESS_TOKEN_TYPE, Downstream, EntraOnBehalfOf, ExchangedToken, TokenExchangeGrant

__all__ = [
    "ACCESS_TOKEN_TYPE",
    "Downstream",
    "EntraOnBehalfOf",
    "ExchangeRefusedError",
    "ExchangeResponseError",
    "ExchangeUnavailableError",
    "ExchangedToken",
    "InteractionRequiredError",
    "InvalidClientError",
    "InvalidGrantError",
    "InvalidScopeError",
    "InvalidTargetError",
    "NoCallerError",
    "TokenExchange",
    "TokenExchangeError",
    "TokenExchangeGrant",
    "UnauthorizedClientError",
    "caller_token",
]
