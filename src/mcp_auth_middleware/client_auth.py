"""How this server authenticates as a client to an authorization server (RFC 6749 §2.3.1,
RFC 7523 §2.2), for introspection and token exchange alike; Authlib does the work."""

from __future__ import annotations

from typing import Any, Literal

from authlib.integrations.httpx_client import OAuth2ClientAuth
from authlib.oauth2.rfc7523 import PrivateKeyJWT

__all__ = ["AuthMethod", "client_authentication"]

AuthMethod = Literal["client_secret_basic", "client_secret_post", "private_key_jwt"]


def client_authentication(
    client_id: str, client_secret: str | None, auth_method: AuthMethod, private_key: Any
) -> OAuth2ClientAuth:
    """The `httpx2.Auth` that authenticates requests as `client_id`; ValueError when the
    method lacks its credential."""
    if auth_method == "private_key_jwt":
        if private_key is None:
            raise ValueError("private_key_jwt needs private_key=")
        return OAuth2ClientAuth(client_id, private_key, PrivateKeyJWT())
    if auth_method not in ("client_secret_basic", "client_secret_post"):
        raise ValueError(
            f"auth_method must be client_secret_basic, client_secret_post or private_key_jwt, not {auth_method!r}"
        )
    if not client_secret:
        raise ValueError(f"{auth_method} needs client_secret=")
    return OAuth2ClientAuth(client_id, client_secret, auth_method)
