"""Remote validation with RFC 7662 token introspection, cached with async-lru."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import replace
from typing import Any

import httpx2

from ..auth_info import AuthInfo
from ..client_auth import AuthMethod, ClientCredentialsBearer, client_authentication
from ..errors import (
    AuthError,
    AuthorizationServerUnavailableError,
    ConfigurationError,
    mismatch_hint,
    shown,
)
from ..fetch import UnexpectedStatusError, check_fetch_url, describe_failure, fetch_limited, json_body
from ..providers import audience_advice
from ..values import word_list
from .asking import Answer, AskingValidator
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


class IntrospectionValidator(AskingValidator):
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

    async def validate_new(self, token: str, key: bytes) -> AuthInfo:
        if self.audience is None:
            raise ConfigurationError(
                "this IntrospectionValidator has no audience: pass audience=, or use it in a middleware"
            )
        return await super().validate_new(token, key)

    async def answer(self, token: str) -> Answer:
        return self._judge(await self._ask(token))

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

    def _judge(self, document: Any) -> Answer:
        now = time.time()
        inactive = self.refused

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
        return self.accepted(info, exp)  # a cached result never outlives exp (RFC 7662 §4)

    async def aclose(self) -> None:
        await self._client.aclose()
