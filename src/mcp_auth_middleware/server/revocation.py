"""Token revocation (RFC 7009)."""

from __future__ import annotations

from typing import Any

from authlib.oauth2.rfc7009 import RevocationEndpoint

from .bridge import owner_of
from .models import Token

__all__ = ["Revocation"]


class Revocation(RevocationEndpoint):  # type: ignore[misc]
    CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]

    def query_token(self, token_string: str, token_type_hint: str | None) -> Token | None:
        owner = owner_of(self)
        return owner.by_access.get(token_string) or owner.by_refresh.get(token_string)

    def revoke_token(self, token: Token, request: Any) -> None:
        token.revoked = True
        token.refresh_revoked = True
