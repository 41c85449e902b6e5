"""The grants: authorization code with PKCE S256 only (RFC 6749 §4.1, RFC 7636, OAuth 2.1),
refresh token with rotation (RFC 6749 §6), client credentials (RFC 6749 §4.4)."""

from __future__ import annotations

import time
from typing import Any

from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc6749.errors import InvalidRequestError
from authlib.oauth2.rfc7636 import CodeChallenge

from .bridge import OAuthRequest, owner_of
from .models import AuthorizationCode, Client, Token, User

__all__ = ["AuthorizationCodeGrant", "ClientCredentialsGrant", "RefreshTokenGrant", "S256Only"]


class AuthorizationCodeGrant(grants.AuthorizationCodeGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]

    def save_authorization_code(self, code: str, request: OAuthRequest) -> None:
        payload = request.payload
        owner_of(self).codes[code] = AuthorizationCode(
            code=code,
            client_id=request.client.client_id,
            redirect_uri=payload.redirect_uri or "",
            scope=request.scope or "",
            user=request.user,
            resource=request.resource,
            code_challenge=payload.data.get("code_challenge"),
            code_challenge_method=payload.data.get("code_challenge_method"),
            expires_at=time.time() + 300,
        )

    def query_authorization_code(self, code: str, client: Client) -> AuthorizationCode | None:
        owner = owner_of(self)
        used = owner.used_codes.get(code)
        if used is not None:
            # RFC 6749 §4.1.2 / OAuth 2.1: a reused code revokes what it issued.
            owner.revoke_tokens(used.issued)
            return None
        item = owner.codes.get(code)
        if item is None or item.client_id != client.client_id or item.is_expired():
            return None
        return item

    def delete_authorization_code(self, authorization_code: AuthorizationCode) -> None:
        owner = owner_of(self)
        owner.codes.pop(authorization_code.code, None)
        owner.used_codes[authorization_code.code] = authorization_code
        owner.last_code = authorization_code

    def authenticate_user(self, authorization_code: AuthorizationCode) -> User:
        return authorization_code.user


class S256Only(CodeChallenge):  # type: ignore[misc]
    """PKCE is required, and only S256 (OAuth 2.1, MCP authorization)."""

    DEFAULT_CODE_CHALLENGE_METHOD = "S256"
    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        # Authlib lets an authorization request without PKCE through and fails it only at the
        # token endpoint; refusing it here tells the client at once.
        if not grant.request.payload.data.get("code_challenge"):
            raise InvalidRequestError(description="Missing 'code_challenge' (PKCE S256 is required)")
        super().validate_code_challenge(grant, redirect_uri)

    def get_authorization_code_challenge(self, authorization_code: AuthorizationCode) -> str | None:
        return authorization_code.code_challenge

    def get_authorization_code_challenge_method(self, authorization_code: AuthorizationCode) -> str | None:
        return authorization_code.code_challenge_method


class RefreshTokenGrant(grants.RefreshTokenGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]
    INCLUDE_NEW_REFRESH_TOKEN = True  # rotation

    def authenticate_refresh_token(self, refresh_token: str) -> Token | None:
        owner = owner_of(self)
        token = owner.by_refresh.get(refresh_token)
        if token is None:
            return None
        if token.refresh_revoked:
            # RFC 9700 §4.14.2: a refresh token used after rotation (or revocation) means two
            # parties hold it; every token of its family is revoked, the successor included.
            owner.revoke_family(token.family)
            return None
        return token

    def authenticate_user(self, refresh_token: Token) -> User:
        return User(refresh_token.sub)

    def revoke_old_credential(self, refresh_token: Token) -> None:
        refresh_token.refresh_revoked = True


class ClientCredentialsGrant(grants.ClientCredentialsGrant):  # type: ignore[misc]
    """A client acting for itself (SEP-1046: machine clients): its token names it as `sub`
    (RFC 9068 §2.2), which `AuthInfo.is_machine` reads."""

    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt"]
