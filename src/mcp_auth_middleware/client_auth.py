"""How this server authenticates as a client to an authorization server (RFC 6749 §2.3.1,
RFC 7523 §2.2), for introspection and token exchange alike; Authlib does the work."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncGenerator
from typing import Any, Literal

import httpx2
from authlib.integrations.httpx_client import OAuth2ClientAuth
from authlib.oauth2.rfc7523 import PrivateKeyJWT

from .errors import ConfigurationError

__all__ = ["AuthMethod", "ClientCredentialsBearer", "client_authentication"]

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


class ClientCredentialsBearer(httpx2.Auth):
    """RFC 7662 §2.1's other way to be let in at an introspection endpoint: a bearer token of
    this resource server's own (RFC 6750), from the client credentials grant (RFC 6749 §4.4)
    with `scope`. Kept until a minute before it expires, fetched again after a 401; some
    servers (Glewlwyd) let resource servers introspect only this way."""

    def __init__(self, token_endpoint: str, client: OAuth2ClientAuth, scope: str | None) -> None:
        self.token_endpoint = token_endpoint
        self.client = client
        self.scope = scope
        self._token: str | None = None
        self._until = 0.0

    def sync_auth_flow(self, request: httpx2.Request) -> Any:
        raise RuntimeError("ClientCredentialsBearer is for async clients")

    async def async_auth_flow(self, request: httpx2.Request) -> AsyncGenerator[httpx2.Request, httpx2.Response]:
        if self._token is None or time.monotonic() >= self._until:
            answer = yield self._token_request()
            self._keep(await answer.aread(), answer.status_code)
        request.headers["Authorization"] = f"Bearer {self._token}"
        response = yield request
        if response.status_code == 401:  # revoked or expired early: once more, with a new one
            answer = yield self._token_request()
            self._keep(await answer.aread(), answer.status_code)
            request.headers["Authorization"] = f"Bearer {self._token}"
            yield request

    def _token_request(self) -> httpx2.Request:
        form = {"grant_type": "client_credentials", **({"scope": self.scope} if self.scope else {})}
        request = httpx2.Request("POST", self.token_endpoint, data=form, headers={"Accept": "application/json"})
        return next(self.client.auth_flow(request))  # type: ignore[no-any-return]

    def _keep(self, body: bytes, status: int) -> None:
        try:
            answer = json.loads(body) if status == 200 else None
        except ValueError:
            answer = None
        token = answer.get("access_token") if isinstance(answer, dict) else None
        if not isinstance(token, str) or not token:
            self._token = None
            raise ConfigurationError(
                f"the token endpoint {self.token_endpoint} gave this resource server no token for introspection "
                f"(client credentials grant, scope {self.scope!r}): HTTP {status}"
            )
        lifetime = answer.get("expires_in") if isinstance(answer, dict) else None
        lifetime = lifetime if isinstance(lifetime, int | float) and lifetime > 0 else 300
        self._token, self._until = token, time.monotonic() + max(lifetime - 60, lifetime / 2)
