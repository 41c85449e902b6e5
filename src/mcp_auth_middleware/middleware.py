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

import asyncio
import contextlib
import difflib
import hmac
import inspect
import logging
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import replace
from functools import partial
from typing import Any

from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .auth_info import AuthInfo
from .body import read_body, replay
from .challenge import Challenger, RawResponse, send_response
from .config import AuthConfig
from .cors import FORBIDDEN_ORIGIN, FORBIDDEN_ORIGIN_PREFLIGHT, with_cors
from .credentials import (
    REPEATED_PROOFS,
    Scanned,
    bearer_token,
    dpop_token,
    form_holds_token,
    is_form,
    query_holds_token,
    scan_headers,
    token_text,
)
from .dpop import DPoPVerifier, InvalidDPoPProofError
from .errors import (
    AuthError,
    AuthorizationServerUnavailableError,
    ConfigurationError,
    InsufficientScopeError,
    InvalidRequestError,
    InvalidTokenError,
    TooManyFailuresError,
    shown,
)
from .integrations.mcp import starlette_user, user_context_var
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
from .rate_limit import ClientAddresses, FailureLimiter
from .resource_metadata import WELL_KNOWN, ResourceMetadata
from .validators.base import as_validator
from .validators.build import validator_for
from .validators.cache import token_key

__all__ = ["MCPAuthMiddleware"]

logger = logging.getLogger("mcp_auth_middleware")

_METHOD_NOT_ALLOWED: RawResponse = (405, [(b"allow", b"GET, HEAD, OPTIONS")], b"")
_MISCONFIGURED: RawResponse = (
    503,
    [(b"content-type", b"application/json"), (b"x-content-type-options", b"nosniff"), (b"cache-control", b"no-store")],
    b'{"error": "server_misconfigured", "error_description": "The server is misconfigured for authorization; '
    b'its log says why"}',
)
_OUTCOMES = {429: "limited", 503: "unavailable"}
_STARTUP_CHECK_TIMEOUT = 10.0
_MAX_HOSTS_SEEN = 16  # distinct unexpected Host values reported, then no more
_MAX_ORIGINS_SEEN = 64  # distinct refused origins said at WARNING, then INFO only
#: Where a request waits while it passes through CORS (see _after_cors).
_SCANNED_KEY = "mcp_auth.scanned"


class MCPAuthMiddleware:
    """Makes the wrapped ASGI app an OAuth 2.1 resource server (MCP authorization, RFC 9728).

    `MCPAuthMiddleware(app, resource=..., issuer=...)` discovers the authorization server's
    keys; pass `validator=` to choose how tokens are checked.
    """

    def __init__(self, app: ASGIApp, config: AuthConfig | None = None, **options: Any) -> None:
        """`MCPAuthMiddleware(app, resource=..., issuer=...)`, or `(app, AuthConfig(...))`;
        every option is in docs/configuration.md."""
        if config is None:
            try:
                config = AuthConfig(**_known_options(options))
            except (TypeError, ValueError) as exc:
                problem = f"MCPAuthMiddleware: {exc}"
                if not _built_by_a_middleware_stack():
                    raise ValueError(problem) from None
                # Starlette's `Middleware(MCPAuthMiddleware, ...)` is built when serving starts,
                # inside the lifespan: raising there reads to uvicorn as "lifespan unsupported",
                # and every request would then be a 500. Fail the startup instead, saying why.
                self.__class__ = _Misconfigured
                self.app, self.problem = app, problem
                return
        elif options:
            raise TypeError("pass an AuthConfig or keyword options, not both")
        self.app = app
        self.config = config
        self.resource = resource = config.resource.url
        self.required_scopes = config.scopes.required
        # Scope rules beyond the global ones (per method, tool, resource, prompt; hierarchy).
        self.policy = ScopePolicy(config.scopes)
        self._inspects_messages = self.policy.inspects_messages
        # Guard against token guessing: failed validations per address (see rate_limit.py).
        guard = config.guard
        self.guard = FailureLimiter(guard.failure_limit, storage_uri=guard.storage) if guard.failure_limit else None
        self._client_address = ClientAddresses(guard.trusted_proxies, guard.forwarded_header)
        # The audience belongs to this resource: a validator shared with another middleware
        # is bound per resource, never changed (MCP authorization, Token Audience Binding).
        validator = as_validator(config.validator) if config.validator is not None else validator_for(config.validation)
        self.validator = validator.for_resource(resource)
        # RFC 9449: with DPoP on, validators return bound tokens and the request path checks
        # their proofs; a bound token presented as a bearer token is refused there.
        dpop = config.dpop
        self._dpop: DPoPVerifier | None = None
        self._dpop_required = dpop is not None and dpop.required
        if dpop is not None:
            self.validator = self.validator.accepting_bound()
            self._dpop = DPoPVerifier(
                algorithms=dpop.algorithms,
                max_age=dpop.max_age,
                leeway=dpop.leeway,
                nonces=dpop.nonces,
                nonce_secret=dpop.nonce_secret,
                storage_uri=guard.storage,
            )
        dpop_algorithms = dpop.algorithms if dpop is not None else ()
        self._origin_url = config.resource.origin  # htu: the URL clients use (RFC 9449 §4.3)
        self._cached = self.validator.cached  # bound once: a warm request calls it directly
        mentioned = config.scopes.mentioned()
        self.metadata = ResourceMetadata(
            resource,
            config.authorization_servers or validator.issuers,
            scopes_supported=sorted(mentioned) if config.scopes_supported is None else config.scopes_supported,
            resource_name=config.resource_name,
            resource_documentation=config.resource_documentation,
            dpop_algorithms=dpop_algorithms,
            dpop_required=self._dpop_required,
        )
        self._resource_host = config.resource.host
        self._hosts_seen: set[str] = set()
        self._origins_seen: set[bytes] = set()
        self._misconfigurations: set[str | None] = set()
        self._well_known_routed = False
        # RFC 9728 §3.1, §5.1: the path-inserted URI and the root one both serve the document.
        self._metadata_paths = {self.metadata.path, WELL_KNOWN}
        self._public_exact = {p for p in config.public_paths if not p.endswith("*")}
        self._public_prefixes = tuple(p[:-1] for p in config.public_paths if p.endswith("*"))
        self.challenger = Challenger(
            self.metadata.url,
            sorted(self.required_scopes),
            realm=config.realm,
            dpop_algorithms=dpop_algorithms,
            bearer=not self._dpop_required,
        )
        self._step_up = StepUp(self.policy, self.required_scopes, self.challenger)
        self.metrics = AuthMetrics()
        self.metrics.bind(self.validator, self.guard, config.meter_provider)
        # Allowed requests are counted always, logged (at DEBUG) only on request: even the
        # check whether DEBUG is on costs measurable time on every request.
        self.log_allowed = config.log_allowed
        self.expose_token = config.expose_token
        self.max_token_length = config.limits.max_token_length
        self.max_form_body = config.limits.max_form_body
        self.max_body = config.limits.max_body
        self.challenge_granted_scopes = config.scopes.challenge_granted
        self.strict_startup = config.strict_startup
        # MCP Streamable HTTP transport, Security Warning: the Origin of every request is
        # validated (DNS rebinding); "*" turns that off, loudly.
        browsers = config.browsers
        self._origins: OriginCheck | None = OriginCheck(config.resource, browsers.origins)
        if browsers.validation_off:
            self._origins = None
            logger.warning(
                "Origin validation is off (allowed_origins contains '*'): any web page a user opens can "
                "call %s through their browser (DNS rebinding)",
                resource,
            )
        self._cors = with_cors(self._after_cors, browsers.cors_origins) if browsers.cors_origins is not None else None

    @classmethod
    def from_env(cls, app: ASGIApp, environ: Mapping[str, str] | None = None, **overrides: Any) -> MCPAuthMiddleware:
        """Configuration from `MCP_AUTH_*` variables (see docs/configuration.md)."""
        return cls(app, AuthConfig.from_env(environ, **overrides))

    # -- the request path --------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._not_http(scope, receive, send)
            return
        # One pass over the headers finds everything the request path reads from them.
        scanned = scan_headers(scope["headers"])
        path, is_metadata = self._inner_path(scope)
        origin = scanned[2]
        if origin is not None:
            if self._origins is not None and not is_metadata and not self._origins.allows(origin):
                # A browser page from another origin (DNS rebinding) is refused before anything
                # else; the metadata stays readable cross-origin (browser clients fetch it).
                await self._refuse_origin(origin, scope, send)
                return
            if self._cors is not None:
                # CORS for browser clients (MCP Inspector): preflights are answered before
                # authentication, and every answer carries the CORS headers.
                scope[_SCANNED_KEY] = (scanned, path, is_metadata)
                await self._cors(scope, receive, send)
                return
        await self._serve(scope, receive, send, scanned, path, is_metadata)

    async def _after_cors(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The rest of the request path, behind CORS (the app CORSMiddleware wraps)."""
        scanned, path, is_metadata = scope.pop(_SCANNED_KEY)
        await self._serve(scope, receive, send, scanned, path, is_metadata)

    async def _serve(
        self, scope: Scope, receive: Receive, send: Send, scanned: Scanned, path: str, is_metadata: bool
    ) -> None:
        if is_metadata:
            await self._serve_metadata(scope, send)
            return
        if path in self._public_exact or (self._public_prefixes and path.startswith(self._public_prefixes)):
            await self.app(scope, receive, send)
            return
        authorization, content_type, _, proof, problem = scanned
        key: bytes | None = None  # the token's SHA-256: the cache key, and its name in logs
        try:
            if problem is not None:
                raise InvalidRequestError(problem)
            query = scope.get("query_string")
            if query and query_holds_token(query):  # never from the query string (OAuth 2.1 §5.1)
                raise InvalidRequestError("Access tokens are only accepted in the Authorization header")
            body = None
            if content_type is not None and is_form(content_type):
                body, receive = await self._read_form(receive)
            token, dpop_scheme = self._token(authorization)
            if token is None:
                await self._challenge(scope, send)
                return
            key = token_key(token)
            # A token verified before costs the hash above and this lookup, and is never
            # refused for its address's earlier failures.
            info = self._cached(key)
            if info is None:
                info = await self._validate_new(token_text(token), key, scope)
            if self._dpop is not None:
                await self._check_binding(info, token, dpop_scheme, proof, scope)
            if self.required_scopes or self._inspects_messages:
                receive = await self._authorize(info, body, receive)
        except AuthError as error:
            await self._deny(error, key, scope, send)
            return
        await self._run_as(info, token, key, scope, receive, send)

    # -- its steps, in the order they are met --------------------------------------------

    async def _not_http(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Websockets are refused: MCP does not use them and we fail closed. Lifespan events
        # reach the app (FastMCP's session manager needs them); when its startup is
        # complete, the configuration is checked against the authorization server.
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        if scope["type"] == "lifespan":
            send = partial(self._lifespan_send, send=send)
        await self.app(scope, receive, send)

    def _inner_path(self, scope: Scope) -> tuple[str, bool]:
        """The path inside the app we wrap (without the prefix of a Mount, or of a proxy's
        root_path: uvicorn --root-path puts it in front of every path), and whether it asks
        for the metadata document."""
        path: str = scope["path"]
        is_metadata = path in self._metadata_paths
        root_path = scope.get("root_path")
        if root_path and path.startswith(root_path):
            path = path[len(root_path) :] or "/"
            is_metadata = is_metadata or path in self._metadata_paths
            if not self._well_known_routed and scope.get("app_root_path", root_path) != root_path:
                self._warn_mounted(root_path)
        return path, is_metadata

    async def _read_form(self, receive: Receive) -> tuple[bytes, Receive]:
        """RFC 6750 §2.2, §3.1: a token in a form body is refused, alone or next to the header,
        whatever the method (an app may read a PUT or PATCH form too). The body is replayed."""
        body, disconnect = await read_body(receive, self.max_form_body)
        if form_holds_token(body):
            raise InvalidRequestError("Access tokens are only accepted in the Authorization header")
        return body, replay(body, disconnect, receive)

    def _token(self, authorization: bytes | None) -> tuple[bytes | None, bool]:
        """The access token, and whether it came with the DPoP scheme (RFC 9449 §7.1)."""
        token = bearer_token(authorization, self.max_token_length)
        if token is None and self._dpop is not None:
            token = dpop_token(authorization, self.max_token_length)
            return token, token is not None
        return token, False

    async def _challenge(self, scope: Scope, send: Send) -> None:
        """No credentials (or another scheme): the plain challenge without `error` (RFC 6750
        §3.1), which starts a client's OAuth flow (RFC 9728 §5.1)."""
        self.metrics.record("challenge", "no bearer token")
        if len(self._hosts_seen) < _MAX_HOSTS_SEEN:
            self._check_host(scope)  # the first request of every client lands here
        if logger.isEnabledFor(logging.DEBUG):
            self._log(logging.DEBUG, "challenge", "no bearer token", None, scope, status=401)
        await send_response(send, self.challenger.unauthorized)

    async def _authorize(self, info: AuthInfo, body: bytes | None, receive: Receive) -> Receive:
        """The scopes this request needs, globally and per tool; `receive` replays the body
        when a rule had to read the JSON-RPC message (only now, for an authenticated caller;
        whatever the method: the rules hold for any request an app might read one from)."""
        needed = self.required_scopes
        messages = None
        if self._inspects_messages:
            if body is None:
                body, disconnect = await read_body(receive, self.max_body)
                receive = replay(body, disconnect, receive)
            messages = parse_messages(body)
            if messages is not None:
                needed = needed | self.policy.required_for(messages)
        if needed and not needed <= info.scopes and (missing := self.policy.missing(info.scopes, needed)):
            # MCP authorization, Scope Challenge Handling: name every scope the operation
            # needs in one challenge; optionally (2025-11-25 style) also those granted.
            raise InsufficientScopeError(
                needed | info.scopes if self.challenge_granted_scopes else needed,
                detail=f"scope {' '.join(sorted(missing))} missing for {describe_messages(messages)}",
            )
        return receive

    async def _deny(self, error: AuthError, key: bytes | None, scope: Scope, send: Send) -> None:
        """One answer (the error's own), one count, one log line, and the guard's tally."""
        self.metrics.record(_OUTCOMES.get(error.status, "deny"), error.description)
        address = self._client_address(scope)
        if self.guard is not None and isinstance(error, InvalidTokenError) and error.guess:
            # Only what looks like guessing counts: a token the authorization server issued
            # that is expired or for another audience is a client's bug.
            await self.guard.record_failure(address)
        level = logging.WARNING if error.mismatch or error.status == 503 else logging.INFO
        if isinstance(error, ConfigurationError):
            # One ERROR line says what is wrong; every request after it would say the same.
            level = logging.DEBUG if error.detail in self._misconfigurations else logging.ERROR
            if len(self._misconfigurations) < 64:
                self._misconfigurations.add(error.detail)
        if logger.isEnabledFor(level):
            reason = f"{error.description}: {error.detail}" if error.detail else error.description
            self._log(level, "deny", reason, key, scope, status=error.status, address=address)
        await send_response(send, self.challenger.for_error(error))

    async def _run_as(
        self, info: AuthInfo, token: bytes, key: bytes, scope: Scope, receive: Receive, send: Send
    ) -> None:
        """Attach the caller where each framework looks for it, and run the app."""
        self.metrics.allowed += 1
        if self.expose_token:
            info = replace(info, token=token.decode("ascii"))
        if self.log_allowed and logger.isEnabledFor(logging.DEBUG):
            self._log(logging.DEBUG, "allow", "valid token", key, scope, info=info)
        state = scope.get("state")
        if state is None:
            state = scope["state"] = {}
        state["auth"] = info  # request.state.auth
        scope["user"] = user = info.derived(starlette_user)  # request.user (the MCP SDK's user when installed)
        scope["auth"] = info.credentials  # request.auth
        scope[STEP_UP_KEY] = self._step_up  # for per-route scope checks (integrations.fastapi)
        if route_checks.used:
            # A route's own 403 (require_auth) is answered and logged as the middleware's.
            scope[ROUTE_DENIAL_KEY] = denial = RouteDenial(send, partial(self._log_route_denial, key, scope))
            send = denial
        reset = user_context_var.set(user)  # get_auth() in a tool; the MCP SDK's get_access_token()
        try:
            await self.app(scope, receive, send)
        finally:
            user_context_var.reset(reset)

    async def check(self) -> AuthError | None:
        """Check the configuration against the authorization server now (discovery, keys,
        introspection credentials): None when all is well, else the error a request would
        get. Logs one line: ERROR for a misconfiguration, WARNING when the server could not
        be reached."""
        problem: AuthError | None = None
        try:
            async with asyncio.timeout(_STARTUP_CHECK_TIMEOUT):
                await self.validator.check()
        except AuthError as error:
            problem = error
        except TimeoutError:
            problem = AuthorizationServerUnavailableError(
                detail=f"no answer from the authorization server within {_STARTUP_CHECK_TIMEOUT:.0f} s"
            )
        if isinstance(problem, ConfigurationError):
            self._misconfigurations.add(problem.detail)  # said here: requests need not say it again
            logger.error("%s is misconfigured: %s", self.resource, problem.detail)
        elif problem is not None:
            logger.warning(
                "could not check %s against its authorization server (%s); requests get 503 until it answers",
                self.resource,
                problem.detail or problem.description,
            )
        return problem

    async def _lifespan_send(self, message: Message, *, send: Send) -> None:
        if message["type"] == "lifespan.startup.complete":
            problem = await self.check()
            if self.strict_startup and isinstance(problem, ConfigurationError):
                # strict_startup: refuse to start rather than answer every request with 503.
                message = {"type": "lifespan.startup.failed", "message": f"misconfigured: {problem.detail}"}
        await send(message)

    @asynccontextmanager
    async def lifespan(self, app: object = None) -> AsyncIterator[None]:
        """The wrapped app's lifespan, then the configuration check, for an outer app that
        mounts this middleware (a mounted app gets no lifespan events of its own, and FastMCP's
        session manager needs them): `Starlette(routes=[...], lifespan=middleware.lifespan)`."""
        inner = getattr(self.app, "lifespan", None) or getattr(
            getattr(self.app, "router", None), "lifespan_context", None
        )
        async with contextlib.AsyncExitStack() as stack:
            if inner is not None:
                await stack.enter_async_context(inner(self.app))
            problem = await self.check()
            if self.strict_startup and isinstance(problem, ConfigurationError):
                raise RuntimeError(f"misconfigured: {problem.detail}")
            if not self._well_known_routed:
                # An outer app runs our lifespan, so we are mounted: say it at startup already.
                self._warn_mounted("a prefix")
            yield

    def well_known_routes(self, *, include_root: bool = True) -> list[Route]:
        """Routes for the outer app that serve this resource's metadata at the host-root
        well-known URLs (RFC 9728 §3.1), for when the middleware is mounted under a prefix
        and so never sees requests for them:

            auth = MCPAuthMiddleware(mcp_app, resource="https://host/api/mcp", ...)
            app = Starlette(routes=[*auth.well_known_routes(), Mount("/api", app=auth)])

        `include_root=False` leaves `/.well-known/oauth-protected-resource` to another resource
        (with several resources on one host, at most one can have it).
        """
        self._well_known_routed = True
        paths = [self.metadata.path] + ([WELL_KNOWN] if include_root and self.metadata.path != WELL_KNOWN else [])
        return [Route(path, _MetadataEndpoint(self)) for path in paths]

    def _warn_mounted(self, prefix: str) -> None:
        self._well_known_routed = True  # say it once
        logger.warning(
            "%s is mounted under %s: clients look for its metadata at %s, which a mounted app never receives. "
            "In the outer app, add *middleware.well_known_routes() to its routes and pass "
            "lifespan=middleware.lifespan (it runs the wrapped app's lifespan, FastMCP's included, then this "
            "middleware's startup check); docs/deployment.md shows both",
            self.resource,
            prefix,
            self.metadata.url,
        )

    def _log_route_denial(self, key: bytes, scope: Scope, reason: str) -> None:
        self.metrics.record("deny", "insufficient scope")
        if logger.isEnabledFor(logging.INFO):
            description = f"The access token lacks a required scope: {reason}"
            self._log(logging.INFO, "deny", description, key, scope, status=403)

    async def _refuse_origin(self, origin: bytes, scope: Scope, send: Send) -> None:
        """403 `forbidden_origin`, readable by the page; said once per origin at WARNING with
        the option that admits it (plain uvicorn shows no INFO, and a browser shows nothing)."""
        self.metrics.record("deny", "origin not allowed")
        preflight = scope["method"] == "OPTIONS" and any(
            name == b"access-control-request-method" for name, _ in scope["headers"]
        )
        answer = FORBIDDEN_ORIGIN_PREFLIGHT if preflight else FORBIDDEN_ORIGIN
        level = logging.INFO
        if origin not in self._origins_seen and len(self._origins_seen) < _MAX_ORIGINS_SEEN:
            self._origins_seen.add(origin)
            level = logging.WARNING
        if logger.isEnabledFor(level):
            reason = (
                f"Origin {shown(origin.decode('latin-1'))} is not allowed: browser pages from it get 403 "
                "forbidden_origin; to admit it, add it to allowed_origins (MCP_AUTH_ALLOWED_ORIGINS)"
            )
            self._log(level, "deny", reason, None, scope, status=answer[0])
        await send_response(send, answer)

    async def _serve_metadata(self, scope: Scope, send: Send) -> None:
        method = scope["method"]
        if method not in ("GET", "HEAD"):
            await send_response(send, _METHOD_NOT_ALLOWED)
            return
        await send_response(send, self.metadata.response, head=method == "HEAD")

    async def _check_binding(
        self, info: AuthInfo, token: bytes, dpop_scheme: bool, proof: bytes | None, scope: Scope
    ) -> None:
        """RFC 9449 §7: a DPoP token needs a proof by the key it is bound to; a bound token is
        never a bearer token (§7.2); with `dpop_required`, no bearer token is."""
        if not dpop_scheme:
            if info.sender_constrained:
                raise InvalidTokenError("A sender-constrained token cannot be used as a bearer token", guess=False)
            if self._dpop_required:
                raise InvalidTokenError("This resource accepts DPoP-bound tokens only", guess=False)
            return
        if info.dpop_jkt is None:
            raise InvalidTokenError("The access token is not DPoP-bound", guess=False)
        if proof is None:
            raise InvalidDPoPProofError("A DPoP token needs a DPoP proof")
        if proof is REPEATED_PROOFS:
            raise InvalidDPoPProofError("The request carries more than one DPoP header")
        assert self._dpop is not None
        thumbprint = await self._dpop.verify(
            proof.decode("latin-1"),
            method=scope["method"],
            url=self._origin_url + scope["path"],
            access_token=token.decode("ascii"),
        )
        if not hmac.compare_digest(thumbprint, info.dpop_jkt):
            raise InvalidDPoPProofError("The DPoP proof key is not the key the token is bound to")

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
            logger.exception("token validation failed unexpectedly (token %s)", _token_hash(key))
            raise AuthorizationServerUnavailableError(detail=f"the validator raised {type(exc).__name__}") from None

    def _log(
        self,
        level: int,
        outcome: str,
        reason: str,
        key: bytes | None,
        scope: Scope,
        *,
        status: int = 200,
        address: str | None = None,
        info: AuthInfo | None = None,
    ) -> None:
        """One line per decision: what, why, which token (a short hash, never the token: MCP
        authorization, Token Handling), from where."""
        token_hash = _token_hash(key)
        address = address or self._client_address(scope)
        logger.log(
            level,
            "auth %s %s %s %s: %s (token %s, client %s)",
            outcome,
            status,
            scope["method"],
            scope["path"],
            reason,
            token_hash or "none",
            address,
            extra={
                "auth_outcome": outcome,
                "auth_reason": reason,
                "auth_status": status,
                "auth_token_hash": token_hash,
                "auth_client_address": address,
                "auth_sub": info.sub if info else None,
                "auth_client_id": info.client_id if info else None,
            },
        )
        if status != 200 and len(self._hosts_seen) < _MAX_HOSTS_SEEN:
            self._check_host(scope)

    def _check_host(self, scope: Scope) -> None:
        """Say once per host when requests name another host than the resource: a client that
        connected to `localhost` for a `127.0.0.1` resource fails the RFC 9728 §3.3 check."""
        raw = next((value for name, value in scope["headers"] if name == b"host"), b"")
        host = raw.decode("latin-1").lower()
        if not host or host == self._resource_host or host in self._hosts_seen:
            return
        self._hosts_seen.add(host)
        logger.warning(
            "requests arrive for host %r but the resource is %s: clients that connect to that host will "
            "refuse the metadata (its `resource` must be the URL they used); set `resource` to the public URL "
            "(ignore this if a proxy rewrites Host)",
            host,
            self.resource,
        )


class _Misconfigured(MCPAuthMiddleware):
    """A middleware whose options cannot work, built by a middleware stack (see __init__):
    its startup fails with the one line that says why; without lifespan, every request gets
    503 `server_misconfigured` and the line is logged once."""

    problem: str

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.failed", "message": self.problem})
            return
        if not getattr(self, "_said", False):
            self._said = True
            logger.error("%s", self.problem)
        if scope["type"] == "http":
            await send_response(send, _MISCONFIGURED)
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1011})


_OPTIONS = frozenset(inspect.signature(AuthConfig.__init__).parameters) - {"self"}


def _known_options(options: dict[str, Any]) -> dict[str, Any]:
    """`options`, or a ValueError naming an option that does not exist (a typo, most likely)."""
    for name in options:
        if name not in _OPTIONS:
            close = difflib.get_close_matches(name, _OPTIONS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else " (docs/configuration.md lists them)"
            raise ValueError(f"unknown option {name!r}{hint}")
    return options


def _built_by_a_middleware_stack() -> bool:
    """Whether Starlette (or FastAPI) is building us from `Middleware(MCPAuthMiddleware, ...)`:
    its `build_middleware_stack` calls the class, two frames up from here."""
    frame = sys._getframe(2)
    return frame.f_code.co_name == "build_middleware_stack"


class _MetadataEndpoint:
    """The metadata document as an ASGI endpoint of another app (see `well_known_routes`),
    with the same CORS answers as inside the middleware."""

    def __init__(self, middleware: MCPAuthMiddleware) -> None:
        self.middleware = middleware
        cors_origins = middleware.config.browsers.cors_origins
        self.app: ASGIApp = self.serve if cors_origins is None else with_cors(self.serve, cors_origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)

    async def serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.middleware._serve_metadata(scope, send)


def _token_hash(key: bytes | None) -> str | None:
    """A short name for a token in logs: the start of its SHA-256, never the token itself."""
    return key.hex()[:12] if key else None
