"""`TokenExchange`: a token for another API, for the caller of the request being handled,
without passing the caller's token on (MCP authorization, Access Token Privilege Restriction;
MCP Security Best Practices, Token Passthrough).

The caller's token goes to the authorization server's token endpoint and nowhere else; what
comes back is a token whose audience is the downstream API (RFC 8693, or Entra's on-behalf-of
flow). Results are cached per (caller token, downstream, scopes) until shortly before they
expire and never past the caller's own token; concurrent calls for the same exchange share
one request.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

import httpx2
from joserfc.jwk import Key

from ..auth_info import AuthInfo
from ..caller import scope_of
from ..client_auth import AuthMethod, client_authentication
from ..credentials import bearer_token, dpop_token, scan_headers
from ..decisions import token_hash
from ..discovery import discover_authorization_server
from ..errors import AuthError, ConfigurationError
from ..fetch import NotJSONError, check_fetch_url, describe_failure, json_body, request_limited
from ..values import word_list
from .auth import ExchangeAuth
from .cache import Entry, ExchangeCache
from .errors import (
    ExchangeRefusedError,
    ExchangeResponseError,
    ExchangeUnavailableError,
    NoCallerError,
    TokenExchangeError,
)
from .grants import (
    ENTRA_ON_BEHALF_OF,
    TOKEN_EXCHANGE,
    TOKEN_EXCHANGE_GRANT,
    Downstream,
    ExchangedToken,
    Grant,
    TokenExchangeGrant,
    refusal,
)
from .proofs import ProofMaker

__all__ = ["TokenExchange"]

logger = logging.getLogger("mcp_auth_middleware.exchange")

_MAX_TOKEN = 16384


class TokenExchange:
    """Tokens for downstream APIs, on behalf of the caller.

    Configure it once, with this server's client at the authorization server and the APIs its
    tools call (`downstreams`, by a name the tools use); in a tool, `await exchange.token(ctx,
    "tickets")` is the token, `exchange.auth(ctx, "tickets")` an `httpx2.Auth` that presents
    it (and exchanges again when it nears expiry). `ctx` is the tool's Context, a Starlette
    Request, or an ASGI scope: the request the middleware authenticated.
    """

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str | None = None,
        auth_method: AuthMethod = "client_secret_basic",
        private_key: Any = None,
        issuer: str | None = None,
        token_endpoint: str | None = None,
        downstreams: Mapping[str, Downstream] | None = None,
        grant: Grant = TOKEN_EXCHANGE_GRANT,
        dpop: bool | Key = False,
        refresh_margin: float = 30.0,
        lifetime_without_expiry: float = 60.0,
        cache_size: int = 10_000,
        cache_storage: str | None = None,
        timeout: float = 5.0,
        max_bytes: int = 64 * 1024,
        retry_after: int = 5,
        allow_http: bool = False,
        http_client: httpx2.AsyncClient | None = None,
    ) -> None:
        if issuer is None and token_endpoint is None:
            raise ValueError("TokenExchange needs issuer= (its token_endpoint is discovered) or token_endpoint=")
        # Authlib authenticates the client (RFC 6749 §2.3.1, RFC 7523 §2.2).
        self._client_auth = client_authentication(client_id, client_secret, auth_method, private_key)
        self.allow_http = allow_http
        self.issuer = check_fetch_url(issuer, allow_http=allow_http) if issuer else None
        self.token_endpoint = check_fetch_url(token_endpoint, allow_http=allow_http) if token_endpoint else None
        self.client_id, self.auth_method, self.grant = client_id, auth_method, grant
        self.downstreams = dict(downstreams or {})
        for name, target in self.downstreams.items():
            if not isinstance(target, Downstream):
                raise ValueError(f"downstreams[{name!r}] must be a Downstream(resource=..., scopes=...)")
        self.refresh_margin, self.lifetime_without_expiry = refresh_margin, lifetime_without_expiry
        self.timeout, self.max_bytes, self.retry_after = timeout, max_bytes, retry_after
        #: Signs DPoP proofs when downstream tokens are to be bound to a key (RFC 9449).
        self.proofs = ProofMaker(None if dpop is True else dpop) if dpop is not False else None
        # Redirects are never followed: the caller's token goes to the token endpoint, nowhere else.
        self._client = http_client or httpx2.AsyncClient(timeout=timeout, follow_redirects=False)
        self._cache = ExchangeCache(cache_size, cache_storage)
        self._inflight: dict[bytes, asyncio.Future[Entry]] = {}
        self._discovery: asyncio.Lock | None = None
        self.exchanges = self.hits = 0  # read by tests and the benchmark

    @classmethod
    def entra_on_behalf_of(
        cls,
        *,
        tenant: str,
        client_id: str,
        authority: str = "https://login.microsoftonline.com",
        **options: Any,
    ) -> TokenExchange:
        """Microsoft Entra ID's on-behalf-of flow: the tenant's v2.0 token endpoint, a `jwt-bearer`
        grant, `client_secret_post` unless told otherwise. Downstreams name their scopes
        (`Downstream(scopes="api://tickets/.default")`)."""
        options.setdefault("auth_method", "client_secret_post")
        endpoint = f"{authority.rstrip('/')}/{tenant}/oauth2/v2.0/token"
        return cls(client_id=client_id, token_endpoint=endpoint, grant=ENTRA_ON_BEHALF_OF, **options)

    # -- for tools ---------------------------------------------------------------------------

    async def token(self, source: Any, downstream: str, *, scopes: str | Iterable[str] | None = None) -> str:
        """An access token for `downstream` (a configured name, or a resource URI), for the
        caller of `source`."""
        return (await self.exchange(source, downstream, scopes=scopes)).access_token

    async def exchange(
        self, source: Any, downstream: str, *, scopes: str | Iterable[str] | None = None
    ) -> ExchangedToken:
        """As `token`, with its type, scopes and expiry."""
        subject, info = caller_token(source)
        return await self.exchanged(subject, info, downstream, scopes)

    def auth(self, source: Any, downstream: str, *, scopes: str | Iterable[str] | None = None) -> httpx2.Auth:
        """An `httpx2.Auth` presenting a token for `downstream` on every request."""
        self.target(downstream)  # an unknown name fails here, where the tool asks for it
        subject, info = caller_token(source)

        def token(fresh: bool) -> Awaitable[ExchangedToken]:
            return self.exchanged(subject, info, downstream, scopes, fresh=fresh)

        return ExchangeAuth(token, self.proofs, downstream)

    async def headers(
        self,
        source: Any,
        downstream: str,
        *,
        scopes: str | Iterable[str] | None = None,
        method: str = "GET",
        url: str | None = None,
    ) -> dict[str, str]:
        """The headers that present the token: `Authorization`, and for a DPoP-bound token a
        `DPoP` proof, which is for one `method` and `url`."""
        token = await self.exchange(source, downstream, scopes=scopes)
        headers = {"Authorization": token.authorization}
        if token.token_type == "DPoP":
            if url is None or self.proofs is None:
                raise ValueError("a DPoP-bound token needs the request's method and url for its proof")
            headers["DPoP"] = self.proofs.proof(method, url, token.access_token)
        return headers

    # -- the exchange ------------------------------------------------------------------------

    def target(self, downstream: str) -> Downstream:
        target = self.downstreams.get(downstream)
        if target is not None:
            return target
        if "://" in downstream:
            return Downstream(downstream)
        known = ", ".join(sorted(self.downstreams)) or "none configured"
        raise ValueError(f"no downstream named {downstream!r} (known: {known}); or pass its resource URI")

    async def exchanged(
        self,
        subject: str,
        info: AuthInfo,
        downstream: str,
        scopes: str | Iterable[str] | None,
        *,
        fresh: bool = False,
    ) -> ExchangedToken:
        """The cached token, or one exchange shared by every concurrent caller of the same key."""
        target = self.target(downstream)
        wanted = tuple(sorted(set(word_list(scopes)))) if scopes is not None else target.scopes
        key = self._key(subject, target, wanted)
        if fresh:
            await self._cache.drop(key)
        else:
            entry = await self._cache.get(key, subject)
            if entry is not None:
                self.hits += 1
                return entry.token
        pending = self._inflight.get(key)
        if pending is None:
            pending = asyncio.ensure_future(self._fetch(subject, info, downstream, target, wanted, key))
            self._inflight[key] = pending
            pending.add_done_callback(self._settled(key))
        return (await asyncio.shield(pending)).token

    def _settled(self, key: bytes) -> Callable[[asyncio.Future[Entry]], None]:
        def settled(done: asyncio.Future[Entry]) -> None:
            self._inflight.pop(key, None)
            if not done.cancelled():
                done.exception()  # retrieved: every waiter may have gone (cancelled tool calls)

        return settled

    def _key(self, subject: str, target: Downstream, scopes: tuple[str, ...]) -> bytes:
        parts = (
            subject,
            self.grant.name,
            self.issuer or self.token_endpoint or "",
            self.client_id,
            target.resource or "",
            target.audience or "",
            " ".join(scopes),
            self.proofs.thumbprint if self.proofs else "",
        )
        return hashlib.sha256("\0".join(parts).encode()).digest()

    async def _fetch(
        self, subject: str, info: AuthInfo, name: str, target: Downstream, scopes: tuple[str, ...], key: bytes
    ) -> Entry:
        caller = token_hash(hashlib.sha256(subject.encode()).digest())
        try:
            token = await self._ask(self.grant.form(subject, target, scopes), scopes)
        except ExchangeRefusedError as exc:
            lacking, hint = sorted(set(scopes) - info.scopes), ""
            if exc.error == "invalid_scope" and lacking:
                # The usual cause: nothing made the client ask the user for the downstream scope.
                hint = (
                    f" (the caller's token lacks {' '.join(lacking)}: name it in tool_scopes of this tool, so that "
                    "the client asks the user for it)"
                )
                exc.description += hint
                exc.args = (exc.description,)
            said = f"{exc.error}: {exc.error_description}" if exc.error_description else exc.error
            level = logging.WARNING if exc.error in ("invalid_client", "unauthorized_client") else logging.INFO
            logger.log(level, "token exchange for %s refused: %s%s (caller token %s)", name, said, hint, caller)
            raise
        except TokenExchangeError as exc:
            logger.warning("token exchange for %s failed: %s (caller token %s)", name, exc.description, caller)
            raise
        now = time.time()
        if token.expires_at is None:
            until = now + self.lifetime_without_expiry
        else:
            until = token.expires_at - min(self.refresh_margin, (token.expires_at - now) / 4)
        if info.expires_at is not None:  # never past the caller's own token
            until = min(until, info.expires_at)
        entry = Entry(token, until)
        await self._cache.put(key, subject, entry)
        logger.info("token exchange for %s: %s token (caller token %s)", name, token.token_type, caller)
        return entry

    async def _ask(self, form: dict[str, Any], scopes: tuple[str, ...]) -> ExchangedToken:
        endpoint = await self.endpoint()
        for attempt in (1, 2):
            headers = {"dpop": self.proofs.proof("POST", endpoint)} if self.proofs else {}
            self.exchanges += 1
            try:
                async with asyncio.timeout(self.timeout):
                    status, body, answer_headers = await request_limited(
                        self._client,
                        "POST",
                        endpoint,
                        self.max_bytes,
                        data=form,
                        headers=headers,
                        auth=self._client_auth,
                    )
            except (OSError, ValueError, httpx2.HTTPError, TimeoutError) as exc:
                raise ExchangeUnavailableError(
                    f"the token endpoint {endpoint} could not be asked: {describe_failure(exc, endpoint)}",
                    retry_after=self.retry_after,
                ) from None
            if status >= 500 or status == 429:
                raise ExchangeUnavailableError(
                    f"the token endpoint {endpoint} answered HTTP {status}",
                    retry_after=_retry_after(answer_headers.get("retry-after"), self.retry_after),
                )
            try:
                document = json_body(body, answer_headers, endpoint)
            except NotJSONError as exc:
                raise ExchangeResponseError(f"HTTP {status}: {exc}") from None
            if status == 200:
                return self.grant.check(document, scopes, dpop=self.proofs is not None)
            error = refusal(
                document, status, (form.get("subject_token"), form.get("assertion"), form.get("actor_token"))
            )
            if error is None:
                raise ExchangeResponseError(f"the token endpoint {endpoint} answered HTTP {status}, not an OAuth error")
            # RFC 9449 §8: the authorization server wants its nonce in the proof; once.
            nonce = answer_headers.get("dpop-nonce")
            if (
                error.error == "use_dpop_nonce"
                and self.proofs
                and attempt == 1
                and self.proofs.remember_nonce(endpoint, nonce)
            ):
                continue
            raise error
        raise AssertionError("unreachable")  # pragma: no cover

    async def endpoint(self) -> str:
        """The token endpoint: given, or from the issuer's metadata (RFC 8414), found once."""
        if self.token_endpoint is not None:
            return self.token_endpoint
        self._discovery = self._discovery or asyncio.Lock()
        async with self._discovery:
            if self.token_endpoint is None:
                self.token_endpoint = await self._discover()
            return self.token_endpoint

    async def _discover(self) -> str:
        assert self.issuer is not None
        try:
            metadata = await discover_authorization_server(
                self.issuer, http_client=self._client, timeout=self.timeout, allow_http=self.allow_http
            )
        except ConfigurationError as exc:
            raise ExchangeResponseError(exc.detail or exc.description) from None
        except AuthError as exc:  # could not be reached
            raise ExchangeUnavailableError(exc.detail or exc.description, retry_after=self.retry_after) from None
        endpoint = metadata.get("token_endpoint")
        if not isinstance(endpoint, str):
            raise ExchangeResponseError(f"the metadata of {self.issuer} names no token_endpoint")
        supported = metadata.get("grant_types_supported")
        if (
            isinstance(self.grant, TokenExchangeGrant)
            and isinstance(supported, list)
            and TOKEN_EXCHANGE not in supported
        ):
            logger.warning(
                "the metadata of %s does not list token exchange in grant_types_supported: exchanges may be "
                "refused (enable it for client %r at the authorization server)",
                self.issuer,
                self.client_id,
            )
        try:
            return check_fetch_url(endpoint, allow_http=self.allow_http)
        except ValueError as exc:
            raise ExchangeResponseError(f"the token_endpoint of {self.issuer}: {exc}") from None

    async def check(self) -> None:
        """At startup: the token endpoint is found, or the error an exchange would raise says
        why (ExchangeResponseError: the configuration; ExchangeUnavailableError: the server is
        not reachable yet). No token is exchanged."""
        await self.endpoint()

    async def aclose(self) -> None:
        await self._client.aclose()
        await self._cache.aclose()


def caller_token(source: Any) -> tuple[str, AuthInfo]:
    """The caller's token and identity, from the request the middleware authenticated."""
    if isinstance(source, AuthInfo):
        if source.token:
            return source.token, source
        raise NoCallerError(
            "this AuthInfo holds no token (the middleware keeps none by default): pass the tool's Context or the "
            "Request instead"
        )
    scope = scope_of(source)
    state = scope.get("state") if scope is not None else None
    info = state.get("auth") if isinstance(state, Mapping) else None
    if scope is None or not isinstance(info, AuthInfo):
        raise NoCallerError(
            "no caller authenticated by MCPAuthMiddleware in this request: pass the tool's Context, the Request "
            "or its ASGI scope"
        )
    authorization = scan_headers(list(scope.get("headers", ())))[0]
    try:
        raw = bearer_token(authorization, _MAX_TOKEN) or dpop_token(authorization, _MAX_TOKEN)
    except AuthError:
        raw = None
    if raw is None:
        raise NoCallerError("the request carries no token in its Authorization header")
    return raw.decode("ascii"), info


def _retry_after(value: str | None, default: int) -> int:
    try:
        return max(0, min(int(value or ""), 3600))
    except ValueError:
        return default
