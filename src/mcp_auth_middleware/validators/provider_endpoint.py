"""Tokens only their provider's own endpoint can check: Google's and GitHub's access tokens are
opaque and not introspectable by RFC 7662, but each provider answers "what is this token?" at
an endpoint of its own (Google's tokeninfo, GitHub's token check API).

`ProviderTokenValidator` is the extension point: a subclass implements `lookup` (ask the
endpoint, return the token's claims, or None when the provider says it is not valid); the base
keeps each answer until the token expires (at most `cache_ttl`), lets concurrent requests with
one token share one call, answers 503 (never 401) when the provider cannot be reached, and
accepts only the OAuth clients in `allowed_clients`.

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
from functools import partial
from typing import Any

import httpx2

from ..auth_info import AuthInfo
from ..credentials import check_token_syntax
from ..errors import AuthError, AuthorizationServerUnavailableError, InvalidTokenError, shown
from ..fetch import check_fetch_url, describe_failure, json_body, request_limited
from ..values import word_list
from .base import CachingValidator
from .cache import TokenCache, token_key
from .claims import to_auth_info

__all__ = ["GoogleTokenInfo", "ProviderTokenValidator"]

logger = logging.getLogger("mcp_auth_middleware")


class ProviderTokenValidator(CachingValidator):
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
        super().__init__(cache_size)
        self.allowed_clients = frozenset(word_list(allowed_clients))
        if not self.allowed_clients:
            raise ValueError(
                f"{type(self).__name__} needs allowed_clients: the OAuth client is all its tokens can be bound to"
            )
        self.scope_claims = tuple(word_list(scope_claims))
        self.client_id_claims = tuple(word_list(client_id_claims))
        self.cache_ttl = cache_ttl
        self.negative_cache_ttl = negative_cache_ttl
        self.timeout = timeout
        self.retry_after = retry_after
        self.http = http_client or httpx2.AsyncClient(timeout=timeout, follow_redirects=False)
        self._refused: TokenCache[bool] = TokenCache(cache_size)
        self._pending: dict[bytes, asyncio.Future[AuthInfo]] = {}
        self.calls = 0

    async def lookup(self, token: str) -> Mapping[str, Any] | None:
        """Ask the provider's endpoint about `token` (with `self.http`): its claims, as
        `to_auth_info` reads them (`sub`, `scope`, the client, `exp`), or None when the provider
        says it is not a valid token. Raise anything else when the answer is not one."""
        raise NotImplementedError

    def checks_locally(self, token: str) -> bool:
        return False

    async def validate(self, token: str) -> AuthInfo:
        key = token_key(token.encode())
        info = self._cache.get(key)
        return info if info is not None else await self.validate_new(token, key)

    async def validate_new(self, token: str, key: bytes) -> AuthInfo:
        self.cache_misses += 1
        check_token_syntax(token)
        if self._refused.get(key):
            raise InvalidTokenError("The access token is not valid", detail=f"{self.provider} said so (remembered)")
        # One call for every request with this token, in a task of its own: a request that is
        # cancelled (its client went away) does not cancel the others' answer.
        task = self._pending.get(key)
        if task is None:
            task = self._pending[key] = asyncio.ensure_future(self._ask(token, key))
            task.add_done_callback(partial(self._done, key))
        return await asyncio.shield(task)

    def _done(self, key: bytes, task: asyncio.Future[AuthInfo]) -> None:
        del self._pending[key]
        if not task.cancelled():
            task.exception()  # retrieved: a failure nobody awaited any more is not reported

    async def _ask(self, token: str, key: bytes) -> AuthInfo:
        self.calls += 1
        try:
            async with asyncio.timeout(self.timeout):
                claims = await self.lookup(token)
        except AuthError:
            raise
        except Exception as exc:  # unreachable, timed out, an answer that is not one
            where = getattr(self, "endpoint", "")
            detail = f"{self.provider} could not be asked about the token: {describe_failure(exc, where)}"
            logger.warning("%s", detail)
            raise AuthorizationServerUnavailableError(
                "The authorization server could not be asked about the token",
                retry_after=self.retry_after,
                detail=detail,
            ) from None
        if claims is None:
            self._refused.put(key, True, time.time() + self.negative_cache_ttl)
            raise InvalidTokenError("The access token is not valid", detail=f"{self.provider} says it is not valid")
        info = to_auth_info(claims, scope_claims=self.scope_claims, client_id_claims=self.client_id_claims)
        if info.client_id not in self.allowed_clients:
            raise InvalidTokenError(
                "The access token was issued to a client this resource does not accept",
                detail=f"{self.provider} says the token is client {shown(info.client_id)}'s, which is not in "
                "allowed_clients",
                mismatch=True,
                guess=False,
            )
        expires = info.expires_at
        now = time.time()
        if expires is not None and expires <= now:
            raise InvalidTokenError("The access token has expired", detail=f"{self.provider} says it has expired")
        self.remember(key, info, min(expires or now + self.cache_ttl, now + self.cache_ttl))
        return info


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
