"""The two ways to ask an authorization server for a token on a caller's behalf: RFC 8693 token
exchange, and Microsoft Entra's on-behalf-of flow (a `jwt-bearer` grant). Each builds the token
request's form and checks the answer; `client.py` sends it."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..values import word_list
from .errors import (
    ERRORS,
    INTERACTION_SUBERRORS,
    ExchangeRefusedError,
    ExchangeResponseError,
    InteractionRequiredError,
    InvalidGrantError,
    redact,
)

__all__ = [
    "ACCESS_TOKEN_TYPE",
    "ENTRA_ON_BEHALF_OF",
    "JWT_BEARER",
    "JWT_TOKEN_TYPE",
    "TOKEN_EXCHANGE",
    "TOKEN_EXCHANGE_GRANT",
    "Downstream",
    "EntraOnBehalfOf",
    "ExchangedToken",
    "Grant",
    "TokenExchangeGrant",
    "refusal",
]

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
JWT_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:jwt"


@dataclass(frozen=True)
class Downstream:
    """An API a tool calls for its caller: where the token is for (`resource`, RFC 8707, and/or
    `audience`, RFC 8693 §2.1, as the authorization server names it) and the scopes asked by
    default. Entra names the API in its scopes alone (`api://tickets/.default`)."""

    resource: str | None = None
    audience: str | None = None
    scopes: tuple[str, ...] = field(default=())

    def __init__(
        self, resource: str | None = None, *, audience: str | None = None, scopes: str | Iterable[str] = ()
    ) -> None:
        object.__setattr__(self, "resource", resource)
        object.__setattr__(self, "audience", audience)
        object.__setattr__(self, "scopes", tuple(word_list(scopes)))
        if not (resource or audience or self.scopes):
            raise ValueError("Downstream needs a resource, an audience or scopes: what is the token for?")


@dataclass(frozen=True)
class ExchangedToken:
    """A token for a downstream API, from a checked answer (RFC 8693 §2.2.1). Its repr leaves
    the token out."""

    access_token: str = field(repr=False)
    #: "Bearer", or "DPoP" for a token bound to this server's DPoP key (RFC 9449 §5).
    token_type: str
    #: When it expires (seconds since the epoch), if the answer said (`expires_in`).
    expires_at: float | None
    scopes: frozenset[str]
    issued_token_type: str | None

    @property
    def authorization(self) -> str:
        """The `Authorization` header value that presents it."""
        return f"{self.token_type} {self.access_token}"


class Grant(Protocol):
    """One way of asking (RFC 8693, Entra on-behalf-of)."""

    name: str

    def form(self, subject_token: str, target: Downstream, scopes: tuple[str, ...]) -> dict[str, Any]: ...

    def check(self, document: Any, scopes: tuple[str, ...], *, dpop: bool) -> ExchangedToken: ...


class TokenExchangeGrant:
    """RFC 8693 §2.1: the caller's access token is the subject token; the result is an access
    token for `resource`/`audience` with `scope`."""

    def __init__(self, subject_token_type: str = ACCESS_TOKEN_TYPE) -> None:
        #: What the caller's token is, as the authorization server names it: an access token
        #: (RFC 8693 §3), or a type of your own where the server asks for one (Auth0's Custom
        #: Token Exchange profiles).
        self.subject_token_type = subject_token_type
        self.name = f"token exchange (RFC 8693, {subject_token_type})"

    def form(self, subject_token: str, target: Downstream, scopes: tuple[str, ...]) -> dict[str, Any]:
        form: dict[str, Any] = {
            "grant_type": TOKEN_EXCHANGE,
            "subject_token": subject_token,
            "subject_token_type": self.subject_token_type,
            "requested_token_type": ACCESS_TOKEN_TYPE,
        }
        if target.resource:
            form["resource"] = target.resource
        if target.audience:
            form["audience"] = target.audience
        if scopes:
            form["scope"] = " ".join(scopes)
        return form

    def check(self, document: Any, scopes: tuple[str, ...], *, dpop: bool) -> ExchangedToken:
        answer = _common(document, scopes, dpop=dpop)
        # §2.2.1: issued_token_type is REQUIRED; an access token (or a JWT used as one) is what
        # was asked for. Anything else (an ID token, a SAML assertion) cannot go in a header.
        if answer.issued_token_type is None:
            raise ExchangeResponseError("the token exchange answer has no issued_token_type (RFC 8693 §2.2.1)")
        if answer.issued_token_type not in (ACCESS_TOKEN_TYPE, JWT_TOKEN_TYPE):
            raise ExchangeResponseError(
                f"the token exchange answer issued a {answer.issued_token_type!r}, not an access token"
            )
        return answer


class EntraOnBehalfOf:
    """Microsoft Entra ID's on-behalf-of flow: a `jwt-bearer` grant with the caller's token as
    `assertion` and `requested_token_use=on_behalf_of`; the API is named by its scopes."""

    name = "Entra on-behalf-of"

    def form(self, subject_token: str, target: Downstream, scopes: tuple[str, ...]) -> dict[str, Any]:
        if not scopes:
            raise ValueError("Entra's on-behalf-of flow names the API by its scopes: api://.../.default or some")
        return {
            "grant_type": JWT_BEARER,
            "assertion": subject_token,
            "requested_token_use": "on_behalf_of",
            "scope": " ".join(scopes),
        }

    def check(self, document: Any, scopes: tuple[str, ...], *, dpop: bool) -> ExchangedToken:
        return _common(document, scopes, dpop=dpop)  # Entra sends no issued_token_type


TOKEN_EXCHANGE_GRANT = TokenExchangeGrant()
ENTRA_ON_BEHALF_OF = EntraOnBehalfOf()


def _common(document: Any, scopes: tuple[str, ...], *, dpop: bool) -> ExchangedToken:
    """RFC 6749 §5.1 and RFC 8693 §2.2.1, what every answer must hold."""
    if not isinstance(document, Mapping):
        raise ExchangeResponseError("the token answer is not a JSON object")
    token = document.get("access_token")
    if not isinstance(token, str) or not token:
        raise ExchangeResponseError("the token answer has no access_token")
    token_type = document.get("token_type")
    if not isinstance(token_type, str):
        raise ExchangeResponseError("the token answer has no token_type")
    kind = token_type.lower()
    if kind == "dpop" and not dpop:
        raise ExchangeResponseError("the token answer is a DPoP-bound token, but no DPoP key was used to ask for it")
    if kind not in ("bearer", "dpop"):
        raise ExchangeResponseError(f"the token answer's token_type is {token_type[:40]!r}, not Bearer or DPoP")
    expires_in = document.get("expires_in")
    if expires_in is not None and (
        isinstance(expires_in, bool) or not isinstance(expires_in, int | float) or expires_in <= 0
    ):
        raise ExchangeResponseError("the token answer's expires_in is not a positive number")
    scope = document.get("scope")
    if scope is not None and not isinstance(scope, str):
        raise ExchangeResponseError("the token answer's scope is not a string")
    issued = document.get("issued_token_type")
    if issued is not None and not isinstance(issued, str):
        raise ExchangeResponseError("the token answer's issued_token_type is not a string")
    return ExchangedToken(
        access_token=token,
        token_type="DPoP" if kind == "dpop" else "Bearer",
        expires_at=time.time() + expires_in if expires_in is not None else None,
        # §2.2.1: scope may be left out when it is the scope asked for.
        scopes=frozenset(scope.split() if scope is not None else scopes),
        issued_token_type=issued,
    )


def refusal(document: Any, status: int, secrets: Iterable[str | None] = ()) -> ExchangeRefusedError | None:
    """The typed error for an RFC 6749 §5.2 error answer, or None if it is not one. What the
    authorization server said is kept without `secrets` (the caller's token it was sent) and
    without anything shaped as a token: it reaches exception messages, log lines and, through
    a framework that shows tool errors, the client."""
    if not isinstance(document, Mapping) or not isinstance(document.get("error"), str):
        return None
    error = redact(document["error"][:80], secrets)
    description = document.get("error_description")
    extra = {k: _redacted(v, secrets) for k, v in document.items() if k not in ("error", "error_description")}
    cls = ERRORS.get(error, ExchangeRefusedError)
    if cls is InvalidGrantError and extra.get("suberror") in INTERACTION_SUBERRORS:
        cls = InteractionRequiredError  # Entra: invalid_grant, but the user must consent or sign in
    return cls(
        error, redact(description, secrets)[:300] if isinstance(description, str) else None, status=status, **extra
    )


def _redacted(value: Any, secrets: Iterable[str | None]) -> Any:
    if isinstance(value, str):
        return redact(value, secrets)
    if isinstance(value, list):
        return [_redacted(item, secrets) for item in value]
    if isinstance(value, Mapping):
        return {key: _redacted(item, secrets) for key, item in value.items()}
    return value
