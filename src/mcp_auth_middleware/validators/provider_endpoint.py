"""Tokens only their provider's own endpoint can check: Google's and GitHub's access tokens are
opaque and not introspectable by RFC 7662, but each provider answers "what is this token?" at
an endpoint of its own (Google's tokeninfo, GitHub's token check API).

`ProviderTokenValidator` is the extension point: a subclass implements `lookup` (ask the
endpoint, return the token's claims, or None when the provider says it is not valid); the base
keeps each answer until the token expires (at most `cache_ttl`; a refusal `negative_cache_ttl`),
lets concurrent requests with one token share one call (asking.py, as introspection does),
answers 503 (never 401) when the provider cannot be reached, and accepts only the OAuth clients
in `allowed_clients`.

What such tokens cannot give: audience binding (MCP authorization, Token Audience Binding).
They are issued for the provider's own APIs, to an OAuth client; the best a server can check
is that client. Any token the provider issued to that client passes, and the server that
receives one could call the provider's APIs with it. docs/identity-providers.md says when not
to use them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any

import httpx2

from ..errors import AuthError, AuthorizationServerUnavailableError, shown
from ..fetch import check_fetch_url, describe_failure, json_body, request_limited
from ..values import word_list
from .asking import Answer, AskingValidator
from .claims import to_auth_info

__all__ = ["GoogleTokenInfo", "ProviderTokenValidator"]

logger = logging.getLogger("mcp_auth_middleware")


class ProviderTokenValidator(AskingValidator):
    """Subclass it and implement `lookup(token)`; see the module docstring."""

    kind = "provider"
    #: The provider's name, for log lines.
    provider = "the provider"

    def __init__(
        self,
        *,
        allowed_clients: str | Iterable[str],
        scope_claims: str | Iterable[str] = ("scope",),
        client_id_claims: str | Iterable[str] = ("client_id", "azp", "aud"),
        cache_ttl: float = 300.0,
        negative_cache_ttl: float = 10.0,
        cache_size: int = 10_000,
        timeout: float = 5.0,
        retry_after: int = 5,
        http_client: httpx2.AsyncClient | None = None,
    ) -> None:
        self.allowed_clients = frozenset(word_list(allowed_clients))
        if not self.allowed_clients:
            raise ValueError(
                f"{type(self).__name__} needs allowed_clients: the OAuth client is all its tokens can be bound to"
            )
        self.scope_claims = tuple(word_list(scope_claims))
        self.client_id_claims = tuple(word_list(client_id_claims))
        self.cache_ttl = cache_ttl
        self.negative_cache_ttl = negative_cache_ttl
        self._results_size = cache_size
        self.timeout = timeout
        self.retry_after = retry_after
        self.http = http_client or httpx2.AsyncClient(timeout=timeout, follow_redirects=False)
        super().__init__(cache_size)

    async def lookup(self, token: str) -> Mapping[str, Any] | None:
        """Ask the provider's endpoint about `token` (with `self.http`): its claims, as
        `to_auth_info` reads them (`sub`, `scope`, the client, `exp`), or None when the provider
        says it is not a valid token. Raise anything else when the answer is not one."""
        raise NotImplementedError

    async def answer(self, token: str) -> Answer:
        self.calls += 1
        try:
            async with asyncio.timeout(self.timeout):
                claims = await self.lookup(token)
        except AuthError:
            self.errors += 1
            raise
        except Exception as exc:  # unreachable, timed out, an answer that is not one
            self.errors += 1
            where = getattr(self, "endpoint", "")
            detail = f"{self.provider} could not be asked about the token: {describe_failure(exc, where)}"
            logger.warning("%s", detail)
            raise AuthorizationServerUnavailableError(
                "The authorization server could not be asked about the token",
                retry_after=self.retry_after,
                detail=detail,
            ) from None
        if claims is None:
            return self.refused("The access token is not valid", f"{self.provider} says it is not valid", guess=True)
        info = to_auth_info(claims, scope_claims=self.scope_claims, client_id_claims=self.client_id_claims)
        if info.client_id not in self.allowed_clients:
            client = shown(info.client_id)
            detail = f"{self.provider} says the token is client {client}'s, which is not in allowed_clients"
            return self.refused(
                "The access token was issued to a client this resource does not accept", detail, mismatch=True
            )
        if info.expires_at is not None and info.expires_at <= time.time():
            return self.refused("The access token has expired", f"{self.provider} says it has expired", guess=True)
        return self.accepted(info, info.expires_at)


class GoogleTokenInfo(ProviderTokenValidator):
    """Google's OAuth 2.0 access tokens, checked at its tokeninfo endpoint (Google Identity,
    "OAuth 2.0 for ... : tokeninfo"): the token goes in a form body, never the URL. Its answer
    names the OAuth client in `azp` and `aud`, the user in `sub`, the granted scopes in
    `scope`, and `exp` as a string of epoch seconds; an invalid token is a 400.

        GoogleTokenInfo(allowed_clients=["1234-abc.apps.googleusercontent.com"])
    """

    provider = "Google's tokeninfo"
    ENDPOINT = "https://oauth2.googleapis.com/tokeninfo"

    def __init__(
        self,
        *,
        allowed_clients: str | Iterable[str],
        endpoint: str = ENDPOINT,
        allow_http: bool = False,
        **options: Any,
    ) -> None:
        super().__init__(allowed_clients=allowed_clients, client_id_claims=("azp", "aud"), **options)
        self.endpoint = check_fetch_url(endpoint, allow_http=allow_http)

    async def lookup(self, token: str) -> Mapping[str, Any] | None:
        # Any answer, not only 200 (fetch_limited's): a 400 is Google saying "not valid".
        status, body, headers = await request_limited(
            self.http, "POST", self.endpoint, 64 * 1024, data={"access_token": token}
        )
        if status == 400:
            return None  # {"error": "invalid_token", "error_description": "Invalid Value"}
        if status != 200:
            raise RuntimeError(f"tokeninfo answered HTTP {status}")
        claims = dict(json_body(body, headers, self.endpoint))
        for name in ("exp", "expires_in"):  # numbers, sent as strings
            if isinstance(claims.get(name), str) and claims[name].isdigit():
                claims[name] = int(claims[name])
        return claims
