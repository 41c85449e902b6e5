"""The broker: the authorization server MCP clients sign in through, in front of a provider they
cannot use directly. Read top to bottom, a sign-in is:

1. `GET /authorize` (RFC 6749 §4.1.1, PKCE S256 required, RFC 8707 `resource` one of ours): the
   client and its redirect URI are checked first; until they are, nothing redirects (an error
   page). The browser gets its `__Host-` cookie; the sign-in is kept, bound to it.
2. The consent page, unless this browser approved this client for these scopes before (MCP
   Security Best Practices, "Confused Deputy Problem"); `POST /consent` with its CSRF token.
3. The provider (`Upstream`): its own PKCE, `state` (the sign-in's id) and `nonce`.
4. `GET /callback`: only in the browser the sign-in began in; the provider's tokens sealed and
   kept; our code sent to the client with `iss` (RFC 9207).
5. `POST /token`: the code (once, by its client, with the verifier) or a refresh token
   (rotated, reuse revokes the family) for a short-lived JWT access token signed by our
   rotating keys (RFC 9068), its `aud` the resource, its `sid` the grant.

Steps 1 to 4 are here, with RFC 8414 metadata and the JWKS; step 5, RFC 7591 registration and
RFC 7009 revocation, what clients call without a browser, are in `client_endpoints`; what every
answer shares (refusals, pages, parameters read strictly) in `answers`. Every record lives in
`Records` (SQLite or Redis/Valkey), so replicas and restarts lose nothing."""

from __future__ import annotations

import hmac
import logging
import re
import secrets
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

from authlib.oauth2.rfc6749.errors import InvalidClientError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from ..config.broker import BrokerContract
from ..errors import AuthError
from ..server.browsers import ForBrowsers
from ..server.client_metadata import ClientMetadataDocuments
from ..validators.jwt import JWTValidator
from .answers import ToClient, answering, page, read_form, resources_for, scopes_for, single
from .client_endpoints import ClientEndpoints, code_key
from .clients import Clients
from .consent import PAGE_HEADERS, BrowserBinding, consent_page
from .provider_tokens import ProviderTokens
from .refresh_tokens import RefreshTokens
from .sealing import Sealer
from .settings import BrokerSettings
from .signing_keys import ALGORITHM, SigningKeys
from .storage import Record, Records, hashed_key, open_records, until
from .upstream import Pending, ProviderError, Upstream

__all__ = ["Broker"]

logger = logging.getLogger("mcp_auth_middleware.broker")

_CHALLENGE = re.compile(r"[A-Za-z0-9\-_]{43}")  # base64url of a SHA-256, unpadded
_CODE_LIFETIME = 60


class Broker:
    """`Broker(BrokerSettings(...))` or `Broker.of(issuer, provider, resources, secrets, ...)`;
    `.app` is its ASGI app (or pass it as `MCPAuthMiddleware(..., broker=broker)`)."""

    def __init__(
        self,
        settings: BrokerSettings,
        *,
        records: Records | None = None,
        client_metadata_documents: ClientMetadataDocuments | None = None,
    ) -> None:
        self.settings = s = settings
        self.issuer = s.issuer
        self.records = records or open_records(s.storage)
        self.sealer = Sealer(s.secrets)
        self.binding = BrowserBinding(s.secrets[0])
        self.keys = SigningKeys(self.records, self.sealer, rotate_every=s.key_rotation)
        self.refresh_tokens = RefreshTokens(
            self.records, self.sealer, lifetime=s.refresh_token_lifetime, grace=s.refresh_grace
        )
        documents = client_metadata_documents or ClientMetadataDocuments(development=s.development)
        self.clients = Clients(self.records, documents, s.clients, s.registration)
        self._upstream: Upstream | None = None
        self._provider_tokens: ProviderTokens | None = None
        self.client_endpoints = ClientEndpoints(
            s, self.records, self.clients, self.keys, self.refresh_tokens, self._forget
        )
        p = s.path
        self.endpoints = {
            "authorization_endpoint": f"{p}/authorize",
            "token_endpoint": f"{p}/token",
            "registration_endpoint": f"{p}/register",
            "revocation_endpoint": f"{p}/revoke",
            "jwks_uri": f"{p}/jwks",
        }
        self.callback_path, self.consent_path = f"{p}/callback", f"{p}/consent"
        metadata_paths = [f"/.well-known/oauth-authorization-server{p}"]
        #: Every path the broker answers (the middleware passes these to it).
        self.paths = frozenset([*self.endpoints.values(), self.callback_path, self.consent_path, *metadata_paths])
        routes = [
            *(Route(path, self._metadata) for path in metadata_paths),
            Route(self.endpoints["jwks_uri"], answering(self._jwks_answer)),
            # What a browser is sent to answers with pages; what clients call, with JSON.
            Route(self.endpoints["authorization_endpoint"], answering(self._authorize_answer, for_browser=True)),
            Route(self.consent_path, answering(self._consent_answer, for_browser=True), methods=["POST"]),
            Route(self.callback_path, answering(self._callback_answer, for_browser=True)),
            Route(self.endpoints["token_endpoint"], answering(self.client_endpoints.token), methods=["POST"]),
            Route(self.endpoints["registration_endpoint"], answering(self.client_endpoints.register), methods=["POST"]),
            Route(self.endpoints["revocation_endpoint"], answering(self.client_endpoints.revoke), methods=["POST"]),
        ]
        #: The ASGI app (CORS on what browser-based clients call, as `server.browsers` says).
        called = ("jwks_uri", "token_endpoint", "registration_endpoint", "revocation_endpoint")
        cors = frozenset([*metadata_paths, *(self.endpoints[name] for name in called)])
        self.app: ASGIApp = ForBrowsers(Starlette(routes=routes), cors)
        logger.info(
            "broker %s in front of %s: register %s%s as the redirect URI there; records in %s",
            self.issuer, s.provider.issuer or s.provider.name, s.origin, self.callback_path, _where(s.storage),
        )  # fmt: skip

    @classmethod
    def of(cls, issuer: str, provider: Any, resources: str | Iterable[str], secrets: str | Iterable[str],
           *, records: Records | None = None, client_metadata_documents: ClientMetadataDocuments | None = None,
           **options: Any) -> Broker:  # fmt: skip
        """The settings as keywords (`BrokerSettings`'s), and the two things settings do not hold."""
        settings = BrokerSettings.of(issuer, provider, resources, secrets, **options)
        return cls(settings, records=records, client_metadata_documents=client_metadata_documents)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)

    def public_path(self, path: str, root_path: str | None) -> str | None:
        """The broker's path a request names, or None: for a middleware serving the broker beside
        its app. A path comes with the prefix (a Mount; uvicorn --root-path adds it) or without it
        (a proxy's root_path alone), and a host-root metadata request with one it lacks."""
        if not root_path:
            return path if path in self.paths else None
        return next((p for p in (path, root_path + path, path.removeprefix(root_path)) if p in self.paths), None)

    async def aclose(self) -> None:
        if self._upstream is not None:
            await self._upstream.aclose()
        await self.clients.documents.aclose()
        await self.records.aclose()

    def validator(self) -> JWTValidator:
        """Validates the broker's access tokens with its keys, read in process (no HTTP call, no
        call per request); the middleware binds it to its resource (the token's `aud`)."""
        return JWTValidator(issuer=self.issuer, key_source=self.keys, algorithms=[ALGORITHM], require_at_jwt=True)

    # -- for tools ----------------------------------------------------------------------------

    async def provider_token(self, auth: Any) -> str:
        """The signed-in user's access token at the provider (refreshed first when about to
        expire), for a tool calling the provider's own APIs. `auth`: the request's `AuthInfo`.
        ProviderError when the user must sign in again or the provider is down."""
        claims = getattr(auth, "claims", None) or {}
        if getattr(auth, "issuer", None) != self.issuer or not isinstance(claims.get("sid"), str):
            raise ProviderError("Sign in again", "not a token this broker issued")
        grant = await self.refresh_tokens.grant_of(claims["sid"])
        if grant is None:
            raise ProviderError("Sign in again", "the sign-in was revoked or has expired")
        return await (await self._tokens()).access_token(grant["grant_id"])

    async def _provider(self) -> Upstream:
        if self._upstream is None:
            try:
                self._upstream = await self.settings.provider.connect()
            except AuthError as exc:  # discovery failed: unreachable, or an answer that cannot work
                raise ProviderError(
                    "The provider cannot be reached", exc.detail or str(exc), unavailable=True
                ) from None
        return self._upstream

    async def _forget(self, grant_id: str) -> None:
        await (await self._tokens()).forget(grant_id)

    async def _tokens(self) -> ProviderTokens:
        if self._provider_tokens is None:
            upstream = await self._provider()
            self._provider_tokens = ProviderTokens(
                self.records, self.sealer, upstream, lifetime=self.settings.refresh_token_lifetime
            )
        return self._provider_tokens

    # -- RFC 8414 metadata, and the keys -------------------------------------------------------

    async def _metadata(self, request: Request) -> Response:
        origin = self.settings.origin
        return JSONResponse(
            {
                "issuer": self.issuer,
                **{name: f"{origin}{path}" for name, path in self.endpoints.items()},
                "scopes_supported": list(self.settings.scopes_supported),
                "response_types_supported": ["code"],
                "response_modes_supported": ["query"],
                "grant_types_supported": ["authorization_code", "refresh_token"],
                "code_challenge_methods_supported": ["S256"],
                "token_endpoint_auth_methods_supported": ["none", "client_secret_basic", "client_secret_post"],
                "revocation_endpoint_auth_methods_supported": ["none", "client_secret_basic", "client_secret_post"],
                "authorization_response_iss_parameter_supported": True,
                "client_id_metadata_document_supported": True,
            },
            headers={"cache-control": "max-age=300"},
        )

    async def _jwks_answer(self, request: Request) -> Response:
        return JSONResponse(await self.keys.jwks(), headers={"cache-control": "max-age=300"})

    # -- 1. the authorization request ----------------------------------------------------------

    async def _authorize_answer(self, request: Request) -> Response:
        query = single(request.query_params.multi_items(), except_=("resource",))
        if query is None:
            return page(400, "This sign-in link is not valid", "A parameter appears more than once in it.",
                         because="authorize: a parameter repeated (RFC 6749 §3.1)")  # fmt: skip
        client_id, redirect_uri = query.get("client_id", ""), query.get("redirect_uri")
        try:
            client = await self.clients.find(client_id)
        except InvalidClientError as exc:
            reason = str(exc.description or "")
            return page(400, "This application cannot sign in here", reason,
                         because=f"authorize: client {client_id[:100]!r}: {reason}")  # fmt: skip
        if redirect_uri is None and len(client.redirect_uris) == 1:
            redirect_uri = client.redirect_uris[0]
        if redirect_uri is None or not client.allows_redirect(redirect_uri):
            # RFC 6749 §4.1.2.1: never redirect to a URI not registered for the client.
            return page(400, "This application cannot sign in here", "Its redirect URI is not registered for it.",
                         because=f"authorize: client {client.client_id!r}: redirect_uri {str(redirect_uri)[:200]!r} "
                         f"is not one of {list(client.redirect_uris)} (loopback: any port)")  # fmt: skip
        await self.clients.keep(client)
        state = query.get("state")
        try:
            scopes, resources, challenge = self._checked_request(query, request.query_params.getlist("resource"))
        except ToClient as refusal:
            return self._to_client(redirect_uri, state, error=refusal.error, error_description=refusal.description)
        browser = self.binding.browser_of(request.headers.get("cookie"))
        new_cookie = None
        if browser is None:
            browser, new_cookie = self.binding.new_browser()
        sign_in = secrets.token_urlsafe(32)
        record = {
            "browser": browser,
            "client_id": client.client_id,
            "redirect_uri": redirect_uri,
            "state": state,
            "scopes": scopes,
            "resources": resources,
            "challenge": challenge,
            "until": time.time() + self.settings.sign_in_lifetime,
        }
        consented = await self._consented(browser, client.client_id)
        if consented is not None and set(scopes) <= consented:  # approved before, these scopes included
            response = await self._to_provider(sign_in, record)
        else:
            await self.records.update(_sign_in_key(sign_in), lambda old: (record, None), until)
            response = HTMLResponse(
                consent_page(
                    client_name=client.client_name,
                    client_id=client.client_id,
                    redirect_uri=redirect_uri,
                    scopes=scopes,
                    csrf=self.binding.csrf_token(browser, sign_in),
                    action=f"{self.consent_path}?{urlencode({'sign_in': sign_in})}",
                ),
                headers=PAGE_HEADERS,
            )
        if new_cookie is not None:
            response.headers.append("set-cookie", new_cookie)
        return response

    def _checked_request(self, query: Mapping[str, str], requested: list[str]) -> tuple[list[str], list[str], str]:
        if query.get("response_type") != "code":
            raise ToClient("unsupported_response_type", "response_type must be code")
        challenge = query.get("code_challenge")
        if not challenge:
            raise ToClient("invalid_request", "code_challenge is required (PKCE S256, OAuth 2.1 section 4.1.1)")
        if query.get("code_challenge_method") != "S256":
            raise ToClient("invalid_request", "code_challenge_method must be S256")
        if not _CHALLENGE.fullmatch(challenge):
            raise ToClient("invalid_request", "code_challenge is not an S256 challenge")
        return scopes_for(self.settings, query.get("scope")), resources_for(self.settings, requested, None), challenge

    # -- 2. consent -------------------------------------------------------------------------------

    async def _consented(self, browser: str, client_id: str) -> set[str] | None:
        """The scopes this browser approved for this client; None if it never approved it."""
        record = await self.records.get(_consent_key(browser, client_id))
        return set(record["scopes"]) if record else None

    async def _consent_answer(self, request: Request) -> Response:
        sign_in = request.query_params.get("sign_in", "")
        form = await read_form(request)
        record = await self.records.get(_sign_in_key(sign_in)) if sign_in else None
        if form is None or record is None or record.get("pending"):
            return page(400, "This sign-in has expired", "Start again from your application.")
        browser = self.binding.browser_of(request.headers.get("cookie"))
        genuine = self.binding.form_is_genuine(request.headers, form, browser, sign_in, self.settings.origin)
        if not genuine or not hmac.compare_digest(str(browser), record["browser"]):
            return page(403, "This form was not sent from this server's page", "Nothing was approved.",
                         because="consent: CSRF token, Origin or browser cookie not this sign-in's")  # fmt: skip
        if form.get("decision") != "approve":
            await self.records.update(_sign_in_key(sign_in), lambda old: (None, None), 0)
            return self._to_client(record["redirect_uri"], record["state"], error="access_denied",
                                   error_description="The user denied the request")  # fmt: skip
        scopes = record["scopes"]
        lifetime = self.settings.consent_lifetime

        def remember(old: Record | None) -> tuple[Record | None, None]:
            kept = list(dict.fromkeys([*(old["scopes"] if old else []), *scopes]))
            return {"scopes": kept, "until": time.time() + lifetime}, None

        await self.records.update(_consent_key(record["browser"], record["client_id"]), remember, until)
        return await self._to_provider(sign_in, record)

    # -- 3. the provider ---------------------------------------------------------------------------

    async def _to_provider(self, sign_in: str, record: Record) -> Response:
        upstream = await self._provider()
        callback = f"{self.settings.origin}{self.callback_path}"
        url, pending = upstream.start(
            callback, state=sign_in, scopes=self.settings.provider.scopes_for(record["scopes"])
        )
        kept = record | {"pending": {"nonce": pending.nonce, "verifier": pending.verifier}}
        await self.records.update(_sign_in_key(sign_in), lambda old: (kept, None), until)
        return RedirectResponse(url, status_code=303, headers={"cache-control": "no-store"})

    # -- 4. the provider's callback ----------------------------------------------------------------

    async def _callback_answer(self, request: Request) -> Response:
        params = single(request.query_params.multi_items())
        sign_in = (params or {}).get("state", "")
        if params is None or not sign_in:
            return page(400, "This sign-in link is not valid", "It names no sign-in this server started.")
        browser = self.binding.browser_of(request.headers.get("cookie")) or ""

        def take(old: Record | None) -> tuple[Record | None, Record | str | None]:
            if old is None or not old.get("pending"):
                return old, None
            if not hmac.compare_digest(browser, old["browser"]):
                return old, "another browser"  # kept: the right browser may still arrive
            return None, old  # used once

        taken = await self.records.update(_sign_in_key(sign_in), take, until)
        if taken is None:
            return page(400, "This sign-in has expired", "It was used already, or took too long. Start again.")
        if not isinstance(taken, dict):
            return page(403, "This sign-in was started in another browser", "Nothing was signed in.",
                         because="callback: the browser cookie is not the one the sign-in began with")  # fmt: skip
        pending = Pending(sign_in, taken["pending"]["nonce"], taken["pending"]["verifier"],
                          f"{self.settings.origin}{self.callback_path}")  # fmt: skip
        try:
            grant = await (await self._provider()).finish(params, pending)
        except ProviderError as exc:
            logger.warning("sign-in at the provider failed: %s", exc.detail)
            if exc.detail == "access_denied":
                return self._to_client(taken["redirect_uri"], taken["state"], error="access_denied",
                                       error_description="The sign-in was refused at the provider")  # fmt: skip
            status = 503 if exc.unavailable else 400
            return page(status, "The sign-in did not complete", exc.reason, retry=exc.unavailable)
        grant_id = secrets.token_urlsafe(24)
        await (await self._tokens()).keep(grant_id, grant)
        code = secrets.token_urlsafe(32)
        record = {
            "client_id": taken["client_id"],
            "redirect_uri": taken["redirect_uri"],
            "scopes": taken["scopes"],
            "resources": taken["resources"],
            "challenge": taken["challenge"],
            "sub": grant.subject,
            "grant_id": grant_id,
            "used": False,
            "until": time.time() + _CODE_LIFETIME,
        }
        await self.records.update(code_key(code), lambda old: (record, None), until)
        return self._to_client(taken["redirect_uri"], taken["state"], code=code)

    def _to_client(self, redirect_uri: str, state: str | None, **params: str) -> Response:
        """RFC 6749 §4.1.2 with RFC 9207 `iss`: the client's `state` returned as it was."""
        answer = {**params, **({"state": state} if state is not None else {}), "iss": self.issuer}
        separator = "&" if "?" in redirect_uri else "?"
        return RedirectResponse(f"{redirect_uri}{separator}{urlencode(answer)}", status_code=303,
                                headers={"cache-control": "no-store", "referrer-policy": "no-referrer"})  # fmt: skip


def _where(storage: str) -> str:
    """The storage, for a log line: a URL without its credentials."""
    if "://" not in storage or storage.startswith("sqlite"):
        return storage
    parts = urlsplit(storage)
    return f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}{parts.path}"


def _sign_in_key(sign_in: str) -> str:
    return hashed_key("sign-in", sign_in)


def _consent_key(browser: str, client_id: str) -> str:
    return hashed_key("consent", browser, client_id)


if TYPE_CHECKING:  # mypy checks here that the middleware's contract is what a Broker is

    def _is_what_the_middleware_asks(broker: Broker) -> BrokerContract:
        return broker
