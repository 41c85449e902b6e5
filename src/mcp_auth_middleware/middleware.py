"""The request path: one pure ASGI middleware, readable top to bottom.

Options are read and checked in `config.py`; this module only decides each request. The
outcomes, in the order the request path meets them:

| outcome | status | challenge (`WWW-Authenticate`) | log level | metric (outcome) |
|---|---|---|---|---|
| public path | the app's | none | none | none |
| `Origin` not allowed | 403 `forbidden_origin` (readable by the page) | none | WARNING once per origin | deny |
| CORS preflight (allowed origin) | 200 | none | none | none |
| metadata document | 200 | none | none | none |
| malformed request (token in query or form, repeated header) | 400 | `Bearer error="invalid_request"` | INFO | deny |
| body too large | 413 | `Bearer error="invalid_request"` | INFO | deny |
| no token | 401 | `Bearer resource_metadata=..., scope=...` | DEBUG | challenge |
| no token, for an authorization server's metadata | 404 | none | none | none |
| invalid, expired, forged, revoked token | 401 | `Bearer error="invalid_token"` | INFO | deny |
| token for another audience or issuer, unknown key id | 401 | `Bearer error="invalid_token"` | WARNING | deny |
| insufficient scope | 403 | `Bearer error="insufficient_scope", scope=...` | INFO | deny |
| rate limited (token guessing) | 429 + `Retry-After` | none | INFO | limited |
| authorization server unavailable | 503 + `Retry-After` | none | WARNING | unavailable |
| misconfigured | 503 `server_misconfigured` | none | ERROR, once | unavailable |
| allowed | the app's | none | DEBUG with `log_allowed` | allowed |

Every challenge carries `resource_metadata` (RFC 9728 §5.1); every denial's log line names
the check, a token fingerprint and the client address (docs/troubleshooting.md).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from functools import partial
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from .auth_info import AuthInfo
from .body import read_body, replay
from .challenge import NOT_AN_AUTHORIZATION_SERVER, Challenger, asks_for_authorization_server_metadata, send_response
from .config import AuthConfig, check_option_names
from .cors import FORBIDDEN_ORIGIN, FORBIDDEN_ORIGIN_PREFLIGHT, with_cors
from .credentials import (
    Scanned,
    bearer_token,
    dpop_token,
    form_holds_token,
    query_holds_token,
    scan_headers,
    token_text,
)
from .decisions import Decisions, token_hash
from .dpop import DPoPVerifier
from .errors import (
    AuthError,
    AuthorizationServerUnavailableError,
    InsufficientScopeError,
    InvalidRequestError,
    InvalidTokenError,
    TooManyFailuresError,
)
from .integrations.mcp import starlette_user, user_context_var
from .listing import Listings
from .mcp_headers import HeaderMismatchError, check_mcp_headers
from .metrics import AuthMetrics
from .origin import OriginCheck
from .policy import (
    ROUTE_DENIAL_KEY,
    STEP_UP_KEY,
    RouteDenial,
    ScopePolicy,
    StepUp,
    describe_messages,
    parse_messages,
    route_checks,
)
from .policy_engine import EngineStep
from .rate_limit import ClientAddresses, FailureLimiter
from .resource_metadata import WELL_KNOWN, ResourceMetadata
from .startup import AroundRequests, Startup
from .validators.base import as_validator
from .validators.build import validator_for
from .validators.cache import token_key

__all__ = ["MCPAuthMiddleware"]

logger = logging.getLogger("mcp_auth_middleware")

#: Where a request's scanned headers wait while it passes through CORS (see _from_a_browser).
_SCANNED_KEY = "mcp_auth.scanned"


class MCPAuthMiddleware(AroundRequests):
    """Makes the wrapped ASGI app an OAuth 2.1 resource server (MCP authorization, RFC 9728).

    `MCPAuthMiddleware(app, resource=..., issuer=...)` discovers the authorization server's
    keys; pass `validator=` to choose how tokens are checked.
    """

    def __init__(self, app: ASGIApp, config: AuthConfig | None = None, **options: Any) -> None:
        """`MCPAuthMiddleware(app, resource=..., issuer=...)`, or `(app, AuthConfig(...))`;
        every option is in docs/configuration.md."""
        if config is None:
            try:
                check_option_names(options)
                config = AuthConfig(**options)
            except (TypeError, ValueError) as exc:
                from .misconfigured import misconfigured  # raises, unless built by Starlette's stack

                misconfigured(self, app, f"MCPAuthMiddleware: {exc}")
                return
        elif options:
            raise TypeError("pass an AuthConfig or keyword options, not both")
        self.app = app
        self.config = config
        self.resource = resource = config.resource.url
        self.required_scopes = config.scopes.required
        # Scope rules beyond the global ones (per method, tool, resource, prompt; hierarchy).
        self.policy = ScopePolicy(config.scopes)
        self._inspects_messages = self.policy.inspects_messages or config.decision_engine is not None
        self.challenge_granted_scopes = config.scopes.challenge_granted
        # Lists follow the rules (listing.py): only when there are rules to follow, or when
        # strict_rules asks to hear of tools that nothing covers.
        rules = config.scopes
        shapes_lists = self._inspects_messages or (rules.strict and not self.required_scopes)
        self._listings = Listings.for_config(config, self.policy) if shapes_lists else None
        self._reads_messages = shapes_lists
        # Guard against token guessing: failed validations per address (see rate_limit.py).
        guard = config.guard
        self.guard = FailureLimiter(guard.failure_limit, storage_uri=guard.storage) if guard.failure_limit else None
        self._client_address = ClientAddresses(guard.trusted_proxies, guard.forwarded_header)
        self._engine = EngineStep.for_config(config, self._client_address)  # a policy engine, after the scopes
        # The audience belongs to this resource: a validator shared with another middleware
        # is bound per resource, never changed (MCP authorization, Token Audience Binding).
        validator = as_validator(config.validator) if config.validator is not None else validator_for(config.validation)
        self.validator = validator.for_resource(resource)
        # RFC 9449: with DPoP on, validators return bound tokens and the request path checks
        # their proofs; a bound token presented as a bearer token is refused there.
        dpop = config.dpop
        self._dpop = DPoPVerifier.from_options(dpop, guard.storage) if dpop is not None else None
        if dpop is not None:
            self.validator = self.validator.accepting_bound()
        self._cached = self.validator.cached  # bound once: a warm request calls it directly
        self.metadata = ResourceMetadata.for_config(config, validator.issuers)
        # RFC 9728 §3.1, §5.1: the path-inserted URI and the root one both serve the document.
        self._metadata_paths = {self.metadata.path, WELL_KNOWN}
        # With `broker=`, the broker answers its endpoints here when it shares this origin.
        broker = config.broker
        self._broker = broker if broker is not None and broker.settings.origin == config.resource.origin else None
        self._public_exact = {p for p in config.public_paths if not p.endswith("*")}
        self._public_prefixes = tuple(p[:-1] for p in config.public_paths if p.endswith("*"))
        self.challenger = Challenger.for_config(config, self.metadata.url)
        self._step_up = StepUp(self.policy, self.required_scopes, self.challenger)
        self.metrics = AuthMetrics()
        self.metrics.bind(self.validator, self.guard, config.meter_provider)
        self.decisions = Decisions(config.resource, self._client_address, self.metrics)
        # Allowed requests are counted always, logged (at DEBUG) only on request: even the
        # check whether DEBUG is on costs measurable time on every request.
        self.log_allowed = config.log_allowed
        self.expose_token = config.expose_token
        self._on_allow = self.log_allowed or self.expose_token  # one check for both on the warm path
        limits = config.limits
        self.max_token_length, self.max_form_body, self.max_body = (
            limits.max_token_length,
            limits.max_form_body,
            limits.max_body,
        )
        self.startup = Startup(
            app,
            self.validator,
            self.metadata,
            self.decisions,
            strict=config.strict_startup,
            cors_origins=config.browsers.cors_origins,
            broker=config.broker,
        )
        # MCP Streamable HTTP transport, Security Warning: the Origin of every request is
        # validated (DNS rebinding); "*" turns that off, loudly. CORS for browser clients.
        browsers = config.browsers
        self._origins = OriginCheck.for_config(config.resource, browsers)
        self._cors = with_cors(self, browsers.cors_origins) if browsers.cors_origins is not None else None
        #: A refused origin's preflight: 204, so that the page can read the 403 that follows.
        self.refused_preflight = FORBIDDEN_ORIGIN_PREFLIGHT

    # -- the request path --------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._not_http(scope, receive, send)
            return
        path: str = scope["path"]
        root_path = scope.get("root_path")
        if self._broker is not None and (public := self._broker.public_path(path, root_path)) is not None:
            await self._broker(dict(scope, path=public, root_path=""), receive, send)  # its own checks
            return
        if root_path:
            path, is_metadata = self._inner_path(path, root_path, scope)
        else:
            is_metadata = path in self._metadata_paths
        # One pass over the headers finds everything the request path reads from them (a
        # request back from CORS, see _from_a_browser, was scanned on its way in).
        back_from_cors = _SCANNED_KEY in scope
        scanned = scope.pop(_SCANNED_KEY) if back_from_cors else scan_headers(scope["headers"])
        authorization, form, origin, proof, problem, mcp_method, mcp_name = scanned
        if (
            origin is not None
            and not back_from_cors
            and await self._from_a_browser(scanned, is_metadata, scope, receive, send)
        ):
            return
        if is_metadata:
            await self.metadata(scope, receive, send)
            return
        if path in self._public_exact or (self._public_prefixes and path.startswith(self._public_prefixes)):
            await self.app(scope, receive, send)
            return

        key: bytes | None = None  # the token's SHA-256: the cache key, and its name in logs
        try:
            if problem is not None:
                raise InvalidRequestError(problem)
            query = scope.get("query_string")
            if query and query_holds_token(query):  # never from the query string (OAuth 2.1 §5.1)
                raise InvalidRequestError("Access tokens are only accepted in the Authorization header")
            body = None
            if form:
                body, receive = await self._read_form(receive)
            token = bearer_token(authorization, self.max_token_length)
            dpop_scheme = False
            if token is None and self._dpop is not None:  # RFC 9449 §7.1: the DPoP scheme
                token = dpop_token(authorization, self.max_token_length)
                dpop_scheme = token is not None
            if token is None:
                await self._challenge(scope, send)
                return
            # Authenticate: a token verified before costs the hash and this lookup, and is never
            # refused for its address's earlier failures.
            key = token_key(token)
            info = self._cached(key)
            if info is None:
                info = await self._validate_new(token_text(token), key, scope)
            if self._dpop is not None:
                url = self.metadata.origin + scope["path"]  # htu: the URL clients use (RFC 9449 §4.3)
                await self._dpop.check_binding(info, token, dpop_scheme, proof, method=scope["method"], url=url)
            # Authorize: the global scopes, and the per-tool ones from the JSON-RPC message.
            if self._reads_messages or mcp_method is not None or mcp_name is not None:
                messages, receive = await self._authorize_messages(info, body, receive, scope, mcp_method, mcp_name)
                if self._listings is not None:
                    send = self._shape_lists(self._listings, messages, scope, send, info)
            elif self.required_scopes and not self.required_scopes <= info.scopes:
                self._check_scopes(info, self.required_scopes, None)
        except AuthError as error:
            await self._deny(error, key, scope, send)
            return
        # Attach the caller where each framework looks for it, and run the app as it.
        self.metrics.allowed += 1
        if self._on_allow:
            info = self._allowed(info, token, key, scope)
        state = scope.get("state")
        if state is None:
            state = scope["state"] = {}
        state["auth"] = info  # request.state.auth
        # request.user: the MCP SDK's user when it is installed, built once per token (its memo
        # is read directly here, without derived()'s call: this runs on every request).
        scope["user"] = user = info._derived.get(starlette_user) or info.derived(starlette_user)
        scope["auth"] = info.credentials  # request.auth
        scope[STEP_UP_KEY] = self._step_up  # for per-route scope checks (integrations.fastapi)
        if route_checks.used:
            # A route's own 403 (require_auth) is answered and logged as the middleware's.
            scope[ROUTE_DENIAL_KEY] = denial = RouteDenial(send, partial(self.decisions.route_denied, key, scope))
            send = denial
        reset = user_context_var.set(user)  # get_auth() in a tool; the MCP SDK's get_access_token()
        try:
            await self.app(scope, receive, send)
        finally:
            user_context_var.reset(reset)

    # -- its steps, in the order they are met --------------------------------------------

    async def _not_http(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Websockets are refused: MCP does not use them and we fail closed. Lifespan events
        # reach the app (FastMCP's session manager needs them); when its startup is
        # complete, the configuration is checked against the authorization server.
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        if scope["type"] == "lifespan":
            send = partial(self.startup.lifespan_send, send=send)
        await self.app(scope, receive, send)

    def _inner_path(self, path: str, root_path: str, scope: Scope) -> tuple[str, bool]:
        """The path inside the app we wrap, without the prefix of a Mount or of a proxy's
        root_path (uvicorn --root-path puts it in front of every path), and whether it asks
        for the metadata document."""
        is_metadata = path in self._metadata_paths
        if path.startswith(root_path):
            path = path[len(root_path) :] or "/"
            is_metadata = is_metadata or path in self._metadata_paths
            if not self.startup.well_known_routed and scope.get("app_root_path", root_path) != root_path:
                self.startup.warn_mounted(root_path)
        return path, is_metadata

    async def _read_form(self, receive: Receive) -> tuple[bytes, Receive]:
        """RFC 6750 §2.2, §3.1: a token in a form body is refused, alone or next to the header,
        whatever the method (an app may read a PUT or PATCH form too). The body is replayed."""
        body, disconnect = await read_body(receive, self.max_form_body)
        if form_holds_token(body):
            raise InvalidRequestError("Access tokens are only accepted in the Authorization header")
        return body, replay(body, disconnect, receive)

    async def _challenge(self, scope: Scope, send: Send) -> None:
        """No credentials (or another scheme): the plain challenge without `error` (RFC 6750
        §3.1), which starts a client's OAuth flow (RFC 9728 §5.1); a 404 for an authorization
        server's metadata, which this resource does not serve."""
        if asks_for_authorization_server_metadata(scope["path"]):
            await send_response(send, NOT_AN_AUTHORIZATION_SERVER)
            return
        self.decisions.challenged(scope)
        await send_response(send, self.challenger.unauthorized)

    def _allowed(self, info: AuthInfo, token: bytes, key: bytes, scope: Scope) -> AuthInfo:
        """With `expose_token`, the caller with its token; with `log_allowed`, one line."""
        if self.expose_token:
            info = replace(info, token=token.decode("ascii"))
        if self.log_allowed:
            self.decisions.allowed(key, scope, info)
        return info

    async def _read_messages(
        self, body: bytes | None, receive: Receive, scope: Scope
    ) -> tuple[list[Any] | None, Receive]:
        """The JSON-RPC message(s), for per-tool rules: read only now, for an authenticated
        caller, whatever the method (the rules hold for any request an app might read one
        from), and replayed to the app byte for byte. (The gateway service reads them from
        the Mcp-Method and Mcp-Name headers instead: gateway/service.py.)"""
        if body is None:
            body, disconnect = await read_body(receive, self.max_body)
            receive = replay(body, disconnect, receive)
        return parse_messages(body), receive

    async def _authorize_messages(
        self,
        info: AuthInfo,
        body: bytes | None,
        receive: Receive,
        scope: Scope,
        mcp_method: bytes | None,
        mcp_name: bytes | None,
    ) -> tuple[list[Any] | None, Receive]:
        """The global scopes and the per-tool ones of the JSON-RPC message(s), which MCP
        2026-07-28's Mcp-Method and Mcp-Name headers must agree with; the message(s), and the
        `receive` that replays the body to the app."""
        messages, receive = await self._read_messages(body, receive, scope)
        if mcp_method is not None or mcp_name is not None:
            check_mcp_headers(mcp_method, mcp_name, messages)
        needed = self.required_scopes
        if messages is not None and self._inspects_messages:
            needed = needed | self.policy.required_for(messages)
        if needed and not needed <= info.scopes:
            self._check_scopes(info, needed, messages)
        if messages and self.policy.callers:
            self.policy.check_caller(messages, info.is_machine)
        if messages and self._engine is not None:  # last: it may cost a round trip
            await self._engine(messages, info, scope)
        return messages, receive

    @staticmethod
    def _shape_lists(
        listings: Listings, messages: list[Any] | None, scope: Scope, send: Send, caller: AuthInfo
    ) -> Send:
        """The lists in the answer keep (or mark) what the rules let this caller call; a GET
        stream may replay the answers of earlier requests: lists in it are known by shape."""
        if messages and (requests := listings.requests(messages)):
            pass
        elif scope["method"] == "GET" and listings.mode != "all":
            requests = None
        else:
            return send
        # The app answers uncompressed: a compressed list could not be read, nor shaped.
        scope["headers"] = [header for header in scope["headers"] if header[0] != b"accept-encoding"]
        return listings.wrap(send, requests, caller.scopes, caller)

    def _check_scopes(self, info: AuthInfo, needed: frozenset[str], messages: list[Any] | None) -> None:
        """MCP authorization, Scope Challenge Handling: 403 naming every scope the operation
        needs in one challenge; optionally (2025-11-25 style) also those granted."""
        if missing := self.policy.missing(info.scopes, needed):
            raise InsufficientScopeError(
                needed | info.scopes if self.challenge_granted_scopes else needed,
                detail=f"scope {' '.join(sorted(missing))} missing for {describe_messages(messages)}",
            )

    async def _deny(self, error: AuthError, key: bytes | None, scope: Scope, send: Send) -> None:
        """One answer (the error's own), one count and log line, and the guard's tally."""
        address = self._client_address(scope)
        if self.guard is not None and isinstance(error, InvalidTokenError) and error.guess:
            # Only what looks like guessing counts: a token the authorization server issued
            # that is expired or for another audience is a client's bug.
            await self.guard.record_failure(address)
        self.decisions.denied(error, key, scope, address)
        answer = error.response() if isinstance(error, HeaderMismatchError) else self.challenger.for_error(error)
        await send_response(send, answer)

    async def _from_a_browser(
        self, scanned: Scanned, is_metadata: bool, scope: Scope, receive: Receive, send: Send
    ) -> bool:
        """A request with an `Origin`: refused unless the origin is allowed (DNS rebinding;
        the metadata stays readable cross-origin, browser clients fetch it); else through CORS,
        which answers preflights before authentication and puts its headers on every answer.
        True when it was answered here (CORS sends it back through `__call__`)."""
        origin = scanned[2]
        assert origin is not None
        if self._origins is not None and not is_metadata and not self._origins.allows(origin):
            await self._refuse_origin(origin, scope, send)
            return True
        if self._cors is None:
            return False
        scope[_SCANNED_KEY] = scanned
        await self._cors(scope, receive, send)
        return True

    async def _refuse_origin(self, origin: bytes, scope: Scope, send: Send) -> None:
        """403 `forbidden_origin`, readable by the page (its preflight passes)."""
        preflight = scope["method"] == "OPTIONS" and any(
            name == b"access-control-request-method" for name, _ in scope["headers"]
        )
        answer = self.refused_preflight if preflight else FORBIDDEN_ORIGIN
        self.decisions.origin_refused(origin, scope, answer[0])
        await send_response(send, answer)

    async def _validate_new(self, token: str, key: bytes, scope: Scope) -> AuthInfo:
        """A token the cache does not hold. From an address that failed too often it is checked
        only when that costs no remote call (a JWT against known keys), so a valid token still
        passes while guessing stays blocked; anything else is 429 before any work."""
        retry_after = None
        if self.guard is not None and self.guard.suspects:
            address = self._client_address(scope)
            if self.guard.is_suspect(address):
                retry_after = await self.guard.retry_after(address)
        if retry_after is not None and not self.validator.checks_locally(token):
            raise TooManyFailuresError(retry_after)
        try:
            return await self.validator.validate_new(token, key)
        except InvalidTokenError as error:
            if retry_after is None:
                raise
            if error.guess:
                await self.guard.record_failure(self._client_address(scope))  # type: ignore[union-attr]
            raise TooManyFailuresError(retry_after) from None
        except AuthError:
            raise
        except Exception as exc:
            # A validator failing in a way it did not mean (its bug, a library's surprise): fail
            # closed with 503, never a 401 that would make the client drop a good token. Only
            # here: a bug in a scope rule or in the app is the bug it is (500, traceback).
            logger.exception("token validation failed unexpectedly (token %s)", token_hash(key))
            raise AuthorizationServerUnavailableError(detail=f"the validator raised {type(exc).__name__}") from None
