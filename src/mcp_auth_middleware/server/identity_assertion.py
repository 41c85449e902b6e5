"""The jwt-bearer grant (RFC 7523 §2.1) with an Identity Assertion JWT Authorization Grant
(ID-JAG, draft-ietf-oauth-identity-assertion-authz-grant; MCP's Enterprise-Managed
Authorization, SEP-990): after single sign-on, the enterprise's identity provider issues the
client an ID-JAG for this authorization server, which the client trades for an access token, with
no consent screen per server: the enterprise decides which apps reach which servers.

The ID-JAG is checked as the draft says: its type (`typ` `oauth-id-jag+jwt`), its signature by a
trusted issuer's key (from configuration only, never from `jku`/`x5u`/`jwk` headers), `iss`
trusted, `aud` this authorization server, `exp` and `iat`, `jti` never seen before (`Replays`,
shared by replicas through Redis), `client_id` the authenticated confidential client, `resource`
one of the resources that issuer may grant (and the token's audience), and the scope: what was
asked within what was asserted. Refusals are RFC 6749 §5.2 errors; nothing is issued.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc6749.errors import (
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    UnauthorizedClientError,
)
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import Key, KeySet

from ..validators.jwks import import_keys
from .bridge import owner_of
from .jwt_tokens import issuing
from .models import User
from .replays import MAX_ASSERTION_LIFETIME
from .resource_indicators import InvalidTargetError

__all__ = ["ID_JAG_TYPE", "JWT_BEARER", "IdentityAssertionGrant", "TrustedIdentityProvider"]

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
#: The JOSE `typ` of an ID-JAG: a JWT of another type (an ID token, an access token) is none.
ID_JAG_TYPE = "oauth-id-jag+jwt"
_ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "ES512", "EdDSA"]
_LEEWAY = 30


@dataclass(frozen=True)
class TrustedIdentityProvider:
    """An enterprise identity provider whose ID-JAGs this authorization server accepts: its
    issuer, its public keys, and the resources its ID-JAGs may name."""

    issuer: str
    keys: tuple[Key, ...]
    resources: frozenset[str]

    @classmethod
    def of(cls, issuer: str, keys: Any, resources: Iterable[str]) -> TrustedIdentityProvider:
        imported = tuple(import_keys(keys))
        if not imported:
            raise ValueError(f"no public signature key for {issuer!r}")
        return cls(issuer, imported, frozenset(resources))


class IdentityAssertionGrant(grants.BaseGrant, grants.TokenEndpointMixin):  # type: ignore[misc]
    GRANT_TYPE = JWT_BEARER
    # The draft: the client presenting an ID-JAG is confidential.
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt"]

    def validate_token_request(self) -> None:
        client = self.authenticate_token_endpoint_client()
        if not client.check_grant_type(JWT_BEARER):
            raise UnauthorizedClientError(description="This client may not use the jwt-bearer grant")
        data = self.request.payload.data
        assertion = data.get("assertion")
        if not isinstance(assertion, str) or not assertion:
            raise InvalidRequestError(description="The assertion (an ID-JAG) is missing")
        owner = owner_of(self)
        claims = _verified(assertion, owner.issuer, owner.identity_providers)
        if claims.get("client_id") != client.client_id:
            raise InvalidGrantError(description="The ID-JAG was issued to another client")
        provider = owner.identity_providers[claims["iss"]]
        resource = claims.get("resource")
        asked = self.request.payload.datalist.get("resource", [])
        if not isinstance(resource, str) or resource not in provider.resources:
            raise InvalidTargetError(description="The ID-JAG names no resource this issuer may grant")
        if asked and asked != [resource]:
            raise InvalidTargetError(description="The resource asked is not the one the ID-JAG names")
        if not owner.replays.first_use("id-jag", claims["iss"], claims["jti"]):
            raise InvalidGrantError(description="The ID-JAG was used before")
        self.request.client = client
        self.request.user = User(claims["sub"])
        self.request.resource = [resource]
        self.request.payload.data["scope"] = " ".join(sorted(_scope(data.get("scope"), claims, client.scope)))

    def create_token_response(self) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        owner = owner_of(self)
        with issuing(audience=self.request.resource):
            token: dict[str, Any] = self.generate_token(
                user=self.request.user, scope=self.request.payload.data["scope"], include_refresh_token=False
            )
        owner.save_token(
            token,
            client_id=self.request.client.client_id,
            sub=self.request.user.get_user_id(),
            resource=self.request.resource,
        )
        return 200, token, self.TOKEN_RESPONSE_HEADER


def _verified(assertion: str, audience: str, trusted: dict[str, TrustedIdentityProvider]) -> dict[str, Any]:
    """The claims of an ID-JAG that this authorization server may accept (InvalidGrantError else)."""
    try:
        verified = jwt.decode(assertion, lambda token: _keys_for(token, trusted), algorithms=_ALGORITHMS)
    except (JoseError, ValueError) as exc:
        raise InvalidGrantError(description=f"The ID-JAG is not valid: {_said(exc)}") from None
    header, claims = verified.header, dict(verified.claims)
    if str(header.get("typ", "")).lower() != ID_JAG_TYPE:
        raise InvalidGrantError(description=f"The assertion is not an ID-JAG (typ {ID_JAG_TYPE})")
    aud = claims.get("aud")
    if aud != audience and not (isinstance(aud, list) and audience in aud):
        raise InvalidGrantError(description="The ID-JAG is for another authorization server (aud)")
    now = time.time()
    expires, issued = claims.get("exp"), claims.get("iat")
    if not isinstance(expires, int | float) or not isinstance(issued, int | float):
        raise InvalidGrantError(description="The ID-JAG has no exp or iat")
    if expires + _LEEWAY < now:
        raise InvalidGrantError(description="The ID-JAG has expired")
    if issued - _LEEWAY > now or expires > now + MAX_ASSERTION_LIFETIME:
        raise InvalidGrantError(description="The ID-JAG is from the future, or valid for too long")
    for name in ("sub", "jti", "client_id"):
        if not isinstance(claims.get(name), str) or not claims[name]:
            raise InvalidGrantError(description=f"The ID-JAG has no {name}")
    return claims


def _keys_for(token: Any, trusted: dict[str, TrustedIdentityProvider]) -> KeySet:
    """The keys of the issuer the (still unverified) token names: only a trusted issuer's."""
    try:
        payload = json.loads(token.payload)
    except ValueError:
        payload = None
    issuer = payload.get("iss") if isinstance(payload, dict) else None
    provider = trusted.get(issuer) if isinstance(issuer, str) else None
    if provider is None:
        raise ValueError("its issuer is not a trusted identity provider")
    return KeySet(list(provider.keys))


def _scope(requested: str | None, claims: dict[str, Any], allowed_by_client: str) -> set[str]:
    """What was asked within what was asserted (and the client may have): asking for more is
    narrowed, not refused; nothing in common is `invalid_scope`."""
    asserted = set(claims.get("scope", "").split()) if isinstance(claims.get("scope"), str) else set()
    granted = asserted & set(allowed_by_client.split())
    if requested:
        granted &= set(requested.split())
    if not granted:
        raise InvalidScopeError(description="None of the scopes asked is in the ID-JAG")
    return granted


def _said(exc: BaseException) -> str:
    return str(getattr(exc, "description", None) or exc)[:120]
