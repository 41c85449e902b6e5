"""`private_key_jwt` (RFC 7523 §2.2, §3; OpenID Connect Core §9): a client that authenticates
with a JWT it signs with its own key, the key it registered (`jwks`). Authlib checks the
signature and the claims (`iss` and `sub` the client, `exp`); here: which audiences count (the
issuer, as RFC 7523bis and the MCP SDK have it, or the token endpoint) and each `jti` once."""

from __future__ import annotations

import time
from typing import Any

from authlib.oauth2.rfc6749 import InvalidClientError
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from joserfc.jwk import KeySet

from ..validators.jwks import import_keys
from .models import AuthorizationStore, Client
from .replays import MAX_ASSERTION_LIFETIME, Replays

__all__ = ["PRIVATE_KEY_JWT", "PrivateKeyJWT"]

PRIVATE_KEY_JWT = "private_key_jwt"


class PrivateKeyJWT(JWTBearerClientAssertion):  # type: ignore[misc]
    CLIENT_AUTH_METHOD = PRIVATE_KEY_JWT

    def __init__(self, owner: AuthorizationStore, replays: Replays) -> None:
        super().__init__(validate_jti=True, leeway=30)
        self.owner, self.replays = owner, replays

    def get_audiences(self) -> list[str]:
        return [self.owner.issuer, self.owner.metadata["token_endpoint"]]

    def verify_claims(self, claims: Any) -> None:
        super().verify_claims(claims)
        if claims["exp"] > time.time() + MAX_ASSERTION_LIFETIME:
            raise InvalidClientError(description="The client assertion is valid for too long")

    def validate_jti(self, claims: Any, jti: Any) -> bool:
        return isinstance(jti, str) and self.replays.first_use("client-assertion", str(claims["iss"]), jti)

    def resolve_client_public_key(self, client: Client) -> KeySet:
        return KeySet(import_keys(client.jwks or {"keys": []}))
