"""Remote validation with RFC 7662 token introspection, cached with async-lru."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import httpx2
from async_lru import alru_cache

from ..auth_info import AuthInfo
from ..client_auth import AuthMethod, ClientCredentialsBearer, client_authentication
from ..credentials import check_token_syntax
from ..errors import (
    AuthError,
    AuthorizationServerUnavailableError,
    ConfigurationError,
    InvalidTokenError,
    mismatch_hint,
    shown,
)
from ..fetch import UnexpectedStatusError, check_fetch_url, describe_failure, fetch_limited, json_body
from ..providers import audience_advice
from ..values import word_list
from .base import CachingValidator
from .claims import (
    DEFAULT_CLIENT_ID_CLAIMS,
    audience_matches,
    canonical_audiences,
    is_numeric_date,
    is_sender_constrained,
    to_auth_info,
)

__all__ = ["IntrospectionValidator"]

logger = logging.getLogger("mcp_auth_middleware.introspection")


@dataclass(frozen=True)
class _Denial:
    """Why a token is refused; the InvalidTokenError is made from it per request (an exception
    kept in a cache would keep its traceback alive)."""

    description: str
    detail: str | None = None
    mismatch: bool = False
    guess: bool = False  # only "not active" can be a guessed token

    def error(self) -> InvalidTokenError:
        return InvalidTokenError(self.description, detail=self.detail, mismatch=self.mismatch, guess=self.guess)


@dataclass(frozen=True)
class _Result:
    info: AuthInfo | None  # None: refused, see denial
    denial: _Denial | None
    until: float  # time (since the epoch) after which the result is not used


class _TokenKey:
    """Cache key: equal and hashed by the token's SHA-256; the token itself is dropped from
    the key as soon as its introspection is done, so the cache holds no raw tokens."""

    __slots__ = ("digest", "token")

    def __init__(self, token: str, digest: bytes) -> None:
        self.token: str | None = token
        self.digest = digest

    def __hash__(self) -> int:
        return hash(self.digest)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _TokenKey) and other.digest == self.digest


class IntrospectionValidator(CachingValidator):
    """Asks the authorization server about each (uncached) token.

    Concurrent requests with the same uncached token share one introspection call. Results
    are cached with async-lru: positive ones until min(token `exp`, `cache_ttl`), negative
    ones for `negative_cache_ttl`; `cache_ttl=0` turns caching off for instant revocation.
    Positive results are also kept in a TokenCache (as the JWT validator keeps its), which the
    middleware reads without a coroutine: a hit costs a hash and a dict lookup.
    """

    def __init__(
        self,
        endpoint: str | None = None,
        *,
        client_id: str,
        client_secret: str | None = None,
        auth_method: AuthMethod = "client_secret_basic",
        private_key: Any = None,
        token_endpoint: str | None = None,
        token_scope: str | None = None,
        audience: str | Iterable[str] | None = None,
        issuer: str | None = None,
        allow_missing_audience: bool = False,
        cache_ttl: float = 60.0,
        negative_cache_ttl: float = 5.0,
        cache_size: int = 10_000,
        timeout: float = 3.0,
        max_bytes: int = 64 * 1024,
        leeway: int = 30,
        scope_claims: str | Iterable[str] = ("scope",),
        client_id_claims: str | Iterable[str] = DEFAULT_CLIENT_ID_CLAIMS,
        retry_after: int = 5,
        allow_http: bool = False,
        resolve_endpoint: Callable[[], Awaitable[str]] | None = None,
        http_client: httpx2.AsyncClient | None = None,
    ) -> None:
        if endpoint is None and resolve_endpoint is None:
            raise ValueError("IntrospectionValidator needs `endpoint` (or discovery through the middleware)")
        # Authlib authenticates the client (RFC 6749 §2.3.1, RFC 7523 §2.2); with
        # `token_endpoint`, only to get a bearer token that the introspection endpoint takes.
        self._client_auth: httpx2.Auth = client_authentication(client_id, client_secret, auth_method, private_key)
        if token_endpoint is not None:
            self._client_auth = ClientCredentialsBearer(
                check_fetch_url(token_endpoint, allow_http=allow_http), self._client_auth, token_scope
            )
        self._allow_http = allow_http
        self.endpoint = check_fetch_url(endpoint, allow_http=allow_http) if endpoint else None
        self._resolve_endpoint = resolve_endpoint
        self.issuer = issuer
        self.allow_missing_audience = allow_missing_audience
        if audience is not None:
            self.audience = canonical_audiences(audience)
        self.cache_ttl = cache_ttl
        self.negative_cache_ttl = negative_cache_ttl
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.leeway = leeway
        self.scope_claims = tuple(word_list(scope_claims))
        self.client_id_claims = tuple(word_list(client_id_claims))
        self.retry_after = retry_after
        # One long-lived pooled client.
        self._client = http_client or httpx2.AsyncClient(timeout=timeout, follow_redirects=False)
        self._auth_method = auth_method
        self.client_id = client_id
        self._results_size = cache_size
        # Verified tokens are kept only when results may be (cache_ttl=0: instant revocation).
        super().__init__(cache_size if cache_ttl > 0 else 0)

    def _new_cache(self) -> None:
        """Besides the verified-token cache: the results cache (async-lru, which also makes
        concurrent requests with one token share a call), and counters read by tests and
        metrics: requests sent, failed, cache lookups; on_duration(seconds)."""
        super()._new_cache()
        self.calls = self.errors = self.lookups = 0
        self.on_duration: Callable[[float], object] | None = None
        self._cached = alru_cache(maxsize=self._results_size, ttl=max(self.cache_ttl, self.negative_cache_ttl))(
            self._introspect
        )

    async def check(self) -> None:
        """The endpoint is found and accepts our client credentials: one introspection of a
        random token (RFC 7662 §2.2: an unknown token is simply not active)."""
        if self.audience is None:
            raise ConfigurationError(
                "this IntrospectionValidator has no audience: pass audience=, or use it in a middleware"
            )
        document = await self._ask(secrets.token_urlsafe(32))
        if not isinstance(document, Mapping) or not isinstance(document.get("active"), bool):
            raise ConfigurationError(
                f"the introspection endpoint {self.endpoint} does not answer like one (no boolean `active`)"
            )

    kind = "introspection"

    @property
    def issuers(self) -> tuple[str, ...]:
        return (self.issuer,) if self.issuer else ()

    def checks_locally(self, token: str) -> bool:
        """Never: an uncached token costs a call to the authorization server."""
        return False

    @property
    def cache_hits(self) -> int:
        # Positive hits in the TokenCache, plus calls that async-lru answered (negative
        # results, and waiters that shared another request's call).
        return self._cache.hits + self.lookups - self.cache_misses

    async def validate_new(self, token: str, key: bytes) -> AuthInfo:
        """Ask about a token the TokenCache does not hold (async-lru may still know it);
        `key` is its token_key."""
        if self.audience is None:
            raise ConfigurationError(
                "this IntrospectionValidator has no audience: pass audience=, or use it in a middleware"
            )
        check_token_syntax(token)
        self.lookups += 1
        if self.cache_ttl <= 0:
            result = await self._introspect(_TokenKey(token, key))
        else:
            result = await self._cached(_TokenKey(token, key))
            if result.until <= time.time():  # past its own lifetime: ask again
                self._cached.cache_invalidate(_TokenKey(token, key))
                result = await self._cached(_TokenKey(token, key))
            if result.info is not None:
                self.remember(key, result.info, result.until)
        if result.info is None:
            assert result.denial is not None
            raise result.denial.error()
        return result.info

    async def _introspect(self, key: _TokenKey) -> _Result:
        self.cache_misses += 1
        token, key.token = key.token, None
        assert token is not None
        try:
            document = await self._ask(token)
        finally:
            del token
        return self._judge(document)

    async def _ask(self, token: str) -> Any:
        try:
            if self.endpoint is None:
                assert self._resolve_endpoint is not None
                self.endpoint = check_fetch_url(await self._resolve_endpoint(), allow_http=self._allow_http)
            self.calls += 1
            started = time.perf_counter()
            async with asyncio.timeout(self.timeout):
                body, headers = await fetch_limited(
                    self._client,
                    "POST",
                    self.endpoint,
                    self.max_bytes,
                    data={"token": token, "token_type_hint": "access_token"},
                    auth=self._client_auth,
                )
            if self.on_duration is not None:
                self.on_duration(time.perf_counter() - started)
            return json_body(body, headers, self.endpoint)
        except AuthError:  # discovery of the endpoint failed; it says why
            self.errors += 1
            raise
        except UnexpectedStatusError as exc:
            self.errors += 1
            if not exc.transient:
                # An answer about our request, not an outage: 401/403 is our credentials.
                why = "refused this resource server's client credentials" if exc.status in (401, 403) else "said"
                raise ConfigurationError(
                    f"the introspection endpoint {self.endpoint} {why}: {exc} "
                    f"(client_id {self.client_id!r}, {self._auth_method})"
                ) from None
            raise self._unavailable(exc) from None
        except (OSError, ValueError, httpx2.HTTPError, TimeoutError) as exc:  # unreachable, TLS, not JSON
            self.errors += 1
            raise self._unavailable(exc) from None

    def _unavailable(self, exc: Exception) -> AuthorizationServerUnavailableError:
        # RFC 7662 §4: fail closed, but as 503: a 401 would make the client drop a good token.
        detail = f"introspection at {self.endpoint} failed: " + describe_failure(exc, self.endpoint or "")
        logger.warning("%s", detail)
        return AuthorizationServerUnavailableError(
            "The authorization server could not be asked about the token", retry_after=self.retry_after, detail=detail
        )

    def _judge(self, document: Any) -> _Result:
        now = time.time()

        def inactive(description: str, detail: str | None = None, **kind: bool) -> _Result:
            return _Result(None, _Denial(description, detail, **kind), now + self.negative_cache_ttl)

        # RFC 7662 §2.2: only the JSON value true is active; a non-object body is not either.
        if not isinstance(document, Mapping) or document.get("active") is not True:
            return inactive("The access token is not active", "the authorization server says not active", guess=True)
        # Active from here on: the authorization server issued this token, so a refusal below
        # is a client's or an operator's mistake, not a guess.
        exp, nbf = document.get("exp"), document.get("nbf")
        for name, value in (("exp", exp), ("nbf", nbf)):
            if value is not None and not is_numeric_date(value):
                return inactive("The introspection response is malformed", f"{name} is {shown(value)}")
        if exp is not None and exp <= now - self.leeway:
            return inactive("The access token has expired", f"expired {now - exp:.0f} s ago")
        if nbf is not None and nbf > now + self.leeway:
            return inactive("The access token is not yet valid", f"valid in {nbf - now:.0f} s")
        if self.issuer is not None and document.get("iss") != self.issuer:
            found = document.get("iss")
            detail = f"issuer {shown(found)} is not {self.issuer!r}{mismatch_hint(self.issuer, found)}"
            return inactive("The access token issuer is not trusted", detail, mismatch=True)
        token_type = document.get("token_type")
        if isinstance(token_type, str) and token_type.lower().replace("-", "_") in ("refresh_token", "refresh"):
            return inactive("A refresh token is not an access token", "token_type says refresh token")
        aud = document.get("aud")
        if aud is None:
            if not self.allow_missing_audience:
                detail = "the response has no aud (allow_missing_audience=True accepts that)"
                return inactive("The access token has no audience", detail, mismatch=True)
        elif self.audience is None or not audience_matches(aud, self.audience):
            detail = f"audience {shown(aud)} does not include {' or '.join(sorted(self.audience or ()))}"
            detail += audience_advice(document, self.audience or ())
            return inactive("The access token was not issued for this resource", detail, mismatch=True)
        if not self.accept_bound and is_sender_constrained(document):  # RFC 9449 §7.2
            detail = "the response has cnf or token_type DPoP, but the token came as a Bearer token"
            return inactive("A sender-constrained token cannot be used as a bearer token", detail)
        scope = document.get("scope")
        if scope is not None and not isinstance(scope, str):
            return inactive("The introspection response is malformed", f"scope is {shown(scope)}")
        info = to_auth_info(dict(document), scope_claims=self.scope_claims, client_id_claims=self.client_id_claims)
        if info.sub is None and isinstance(document.get("username"), str):
            info = replace(info, sub=document["username"])  # RFC 7662 `username` when there is no `sub`
        # A cached result never outlives the token's exp (RFC 7662 §4).
        until = now + self.cache_ttl if exp is None else min(now + self.cache_ttl, exp)
        return _Result(info, None, until)

    async def aclose(self) -> None:
        await self._client.aclose()
