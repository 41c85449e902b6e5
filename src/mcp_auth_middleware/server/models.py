"""What the local authorization server keeps in memory: clients, users, codes, tokens (the
records Authlib's grants ask for through its mixin methods), and `AuthorizationStore`, what
the grants and endpoints beside it ask of the server that keeps them (so that they depend on
this contract, not on `local.py`)."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from authlib.oauth2.rfc6749 import ClientMixin
from joserfc.jwk import RSAKey

from ..values import word_list

if TYPE_CHECKING:
    from .identity_assertion import TrustedIdentityProvider
    from .replays import Replays

__all__ = ["AuthorizationCode", "AuthorizationStore", "Client", "ExchangePolicy", "Token", "User"]


@dataclass
class Client(ClientMixin):  # type: ignore[misc]
    client_id: str
    client_secret: str | None = field(repr=False)  # never in a log line (Authlib logs clients with %r)
    redirect_uris: list[str]
    grant_types: list[str]
    scope: str
    token_endpoint_auth_method: str
    client_name: str | None = None
    #: The public keys of a `private_key_jwt` client (RFC 7591 `jwks`).
    jwks: dict[str, Any] | None = None

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        # RFC 6749 §3.1.2.3, OAuth 2.1 §4.1.1: with several registered, the request must say which.
        return self.redirect_uris[0] if len(self.redirect_uris) == 1 else None

    def get_allowed_scope(self, scope: str) -> str:
        if not scope:
            return ""
        allowed = set(self.scope.split())
        return " ".join(s for s in scope.split() if s in allowed)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        return self.client_secret is not None and secrets.compare_digest(self.client_secret, client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        if endpoint == "token":
            return method == self.token_endpoint_auth_method
        return method in ("client_secret_basic", "client_secret_post", "none")

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in self.grant_types


@dataclass
class User:
    sub: str

    def get_user_id(self) -> str:
        return self.sub


@dataclass
class AuthorizationCode:
    code: str
    client_id: str
    redirect_uri: str
    scope: str
    user: User
    resource: list[str]
    code_challenge: str | None
    code_challenge_method: str | None
    expires_at: float
    issued: list[str] = field(default_factory=list)  # tokens this code produced

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def is_expired(self) -> bool:
        return time.time() > self.expires_at


@dataclass
class Token:
    access_token: str = field(repr=False)
    refresh_token: str | None = field(repr=False)
    client_id: str
    scope: str
    sub: str
    resource: list[str]
    issued_at: int
    expires_in: int
    jti: str
    revoked: bool = False
    refresh_revoked: bool = False
    dpop_jkt: str | None = None  # RFC 9449 §6: the thumbprint of the key the token is bound to
    act: dict[str, Any] | None = None  # RFC 8693 §4.1: who acts for `sub` (an exchanged token)
    #: The grant this token descends from through refresh-token rotation: a rotated-out refresh
    #: token used again revokes the whole family (RFC 9700 §4.14.2).
    family: str = field(default_factory=lambda: secrets.token_urlsafe(12))

    def check_client(self, client: Client) -> bool:
        return self.client_id == client.client_id

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        return self.expires_in

    def is_expired(self) -> bool:
        return time.time() >= self.issued_at + self.expires_in

    def is_revoked(self) -> bool:
        return self.revoked

    def get_user(self) -> User:
        return User(self.sub)

    def get_client(self) -> Any:
        return None

    def introspection(self, issuer: str) -> dict[str, Any]:
        return {
            "scope": self.scope,
            "client_id": self.client_id,
            "username": self.sub,
            "sub": self.sub,
            "token_type": "Bearer",
            "exp": self.issued_at + self.expires_in,
            "iat": self.issued_at,
            "aud": self.resource[0] if len(self.resource) == 1 else self.resource or None,
            "iss": issuer,
            "jti": self.jti,
            **({"token_type": "DPoP", "cnf": {"jkt": self.dpop_jkt}} if self.dpop_jkt else {}),
            **({"act": self.act} if self.act else {}),
        }


@dataclass(frozen=True)
class ExchangePolicy:
    """What one client may exchange: tokens whose audience is one of `from_resources`, for
    tokens to `to_resources`, with at most `scopes` (None: whatever the subject token has)."""

    from_resources: frozenset[str]
    to_resources: frozenset[str]
    scopes: frozenset[str] | None = None

    @classmethod
    def of(
        cls, from_resources: Iterable[str], to_resources: Iterable[str], scopes: str | Iterable[str] | None
    ) -> ExchangePolicy:
        return cls(
            frozenset(from_resources), frozenset(to_resources), None if scopes is None else frozenset(word_list(scopes))
        )


class AuthorizationStore(Protocol):
    """What the grants, endpoints and token generators read and write (LocalAuthorizationServer)."""

    issuer: str
    key: RSAKey
    scopes_supported: list[str]
    access_token_ttl: int
    exchange_policies: dict[str, ExchangePolicy]
    metadata: dict[str, Any]
    clients: dict[str, Client]
    codes: dict[str, AuthorizationCode]
    used_codes: dict[str, AuthorizationCode]
    last_code: AuthorizationCode | None
    by_access: dict[str, Token]
    by_refresh: dict[str, Token]
    identity_providers: dict[str, TrustedIdentityProvider]
    replays: Replays

    def register_client(
        self,
        *,
        client_id: str | None = None,
        client_secret: str | None = None,
        redirect_uris: Iterable[str] = (),
        grant_types: Iterable[str] = ("authorization_code", "refresh_token"),
        scope: str | None = None,
        token_endpoint_auth_method: str | None = None,
        client_name: str | None = None,
        jwks: dict[str, Any] | None = None,
    ) -> Client: ...

    def keep_registration(self, client: Client) -> None: ...

    def revoke_tokens(self, access_tokens: Iterable[str]) -> None: ...

    def revoke_family(self, family: str) -> None: ...

    def save_token(
        self,
        token: dict[str, Any],
        *,
        client_id: str,
        sub: str,
        resource: list[str],
        code: AuthorizationCode | None = None,
        dpop_jkt: str | None = None,
        family: str | None = None,
        act: dict[str, Any] | None = None,
    ) -> None: ...

    def expires_in(self, client: Client, grant_type: str) -> int: ...
