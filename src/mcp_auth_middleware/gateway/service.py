"""`GatewayService`: the middleware's checks as the service a gateway asks "may this pass?"
(nginx `auth_request`, Caddy `forward_auth`, Traefik `ForwardAuth`, Envoy `ext_authz`).

A subrequest is answered by the middleware's own request path, run on the original request
rebuilt from the gateway's headers (original.py): the same Origin check, token validation,
DPoP proof (its `htu` is the resource's origin and the original path), guard and scopes, the
same answers and log lines. One difference: per-tool rules are decided from the MCP 2026-07-28
headers `Mcp-Method` and `Mcp-Name`, since the gateway sends no body; the upstream must check
that they agree with the body, as that version requires of every server, and so they are read
only from a request with one `MCP-Protocol-Version` of 2026-07-28 or later (mcp_headers.py).

The answers, for the gateway to act on:

| request | answer |
|---|---|
| allowed (or a public path) | 200, the caller in identity headers (identity.py; empty on a public path) |
| denied | the middleware's 400/401/403/429/503 with its `WWW-Authenticate` |
| not from a trusted gateway | 403 `untrusted_gateway` (WARNING once per address) |
| without the headers the gateway always sends | 503 `server_misconfigured` (ERROR once) |
| an original path not in normal form (`/public/../mcp`) | 400 `invalid_request` |
| `GET` the RFC 9728 metadata paths (exactly) | the document (route them here) |
| `GET /.well-known/jwks.json` (with an assertion key) | the assertion's public key |
| any other path than `check_path` (`/check`) | 404: only the gateway's subrequests are checks |
| a refused `Origin`'s preflight | 403 `forbidden_origin`: never a 2xx that passes it to the upstream |
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import fields
from typing import Any

from starlette.types import Message, Receive, Scope, Send

from ..challenge import MISCONFIGURED, RawResponse, send_response
from ..config import AuthConfig, check_option_names
from ..cors import FORBIDDEN_ORIGIN
from ..errors import AuthError, InvalidRequestError
from ..mcp_headers import NAME_BEARING_METHODS, HeaderMismatchError, decode_header
from ..middleware import MCPAuthMiddleware
from ..rate_limit import parse_networks
from .identity import Identity
from .options import GatewayOptions
from .original import AmbiguousPath, GatewayProblem, OriginalRequest, UntrustedGateway

__all__ = ["JWKS_PATH", "GatewayService"]

logger = logging.getLogger("mcp_auth_middleware")

JWKS_PATH = "/.well-known/jwks.json"
_GATEWAY_OPTIONS = frozenset(f.name for f in fields(GatewayOptions))
_UNTRUSTED: RawResponse = (
    403,
    [(b"content-type", b"application/json"), (b"cache-control", b"no-store")],
    b'{"error": "untrusted_gateway", "error_description": "Subrequests are answered only for trusted gateways"}',
)
_AMBIGUOUS: RawResponse = (
    400,
    [(b"content-type", b"application/json"), (b"cache-control", b"no-store")],
    b'{"error": "invalid_request", "error_description": "The path is not in normal form (dot segments, '
    b'empty segments or an encoded slash)"}',
)
_NOT_FOUND: RawResponse = (
    404,
    [(b"content-type", b"application/json"), (b"cache-control", b"no-store")],
    b'{"error": "not_found", "error_description": "Checks are answered only on the check path"}',
)
_NO_STORE = (b"cache-control", b"no-store")
_MAX_SEEN = 1024


class GatewayService:
    """An ASGI app that decides a gateway's subrequests with the middleware's checks.

    `GatewayService(gateway="nginx", resource=..., issuer=...)` takes every option of
    `MCPAuthMiddleware` and those of `GatewayOptions`; or `(AuthConfig(...), GatewayOptions(...))`.
    Serve it with `mcp-oauth-middleware gateway` or any ASGI server (without proxy headers:
    it reads the subrequest's peer address to trust the gateway).
    """

    def __init__(
        self, config: AuthConfig | None = None, options: GatewayOptions | None = None, **keywords: Any
    ) -> None:
        gateway_keywords = {name: keywords.pop(name) for name in list(keywords) if name in _GATEWAY_OPTIONS}
        try:
            if options is None:
                options = GatewayOptions(**gateway_keywords)
            elif gateway_keywords:
                raise TypeError("pass GatewayOptions or its keywords, not both")
            if config is None:
                check_option_names(keywords)
                config = AuthConfig(**keywords)
            elif keywords:
                raise TypeError("pass an AuthConfig or keyword options, not both")
        except (TypeError, ValueError) as exc:
            raise ValueError(f"GatewayService: {exc}") from None
        self.options = options
        self.config = config
        self.checks = _HeaderChecks(self._allow, config, options)
        self.original = OriginalRequest(options, config.resource.url)
        self.identity = Identity(options, config.resource.url)
        self.metadata = self.checks.metadata
        self._metadata_paths = {self.metadata.path, "/.well-known/oauth-protected-resource"}
        self._jwks: RawResponse | None = None
        if self.identity.jwks is not None:
            body = json.dumps(self.identity.jwks).encode()
            self._jwks = (200, [(b"content-type", b"application/json"), (b"cache-control", b"max-age=300")], body)
        self._said: set[str] = set()
        if options.without_mcp_headers == "global" and self.checks.policy.inspects_messages:
            logger.warning(
                "without_mcp_headers='global': a request without Mcp-Method and Mcp-Name (a client older than "
                "MCP 2026-07-28) is decided under the global scopes only, and may call any tool"
            )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> GatewayService:
        """Configuration from the `MCP_AUTH_*` variables, the middleware's and the gateway's."""
        gateway = {name: overrides.pop(name) for name in list(overrides) if name in _GATEWAY_OPTIONS}
        return cls(AuthConfig.from_env(environ, **overrides), GatewayOptions.from_env(environ, **gateway))

    async def check(self) -> AuthError | None:
        """The middleware's configuration check (see `MCPAuthMiddleware.check`)."""
        return await self.checks.check()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.checks(scope, receive, send)  # lifespan: the configuration check at startup
            return
        path = scope["path"]
        if path in self._metadata_paths:  # RFC 9728 §3: the document, proxied here by the gateway
            await self.metadata(scope, receive, send)
            return
        if path == JWKS_PATH and self._jwks is not None and scope["method"] in ("GET", "HEAD"):
            await send_response(send, self._jwks, head=scope["method"] == "HEAD")
            return
        if not self._is_check(path):
            # Only the gateway's subrequests are checks: a route that forwards a client's own
            # request here (with its own X-Original-* headers) gets nothing to copy.
            await send_response(send, _NOT_FOUND)
            return
        try:
            original = self.original.scope(scope)
        except UntrustedGateway:
            peer = scope["client"][0] if scope.get("client") else "unknown"
            self._say_once(
                logging.WARNING,
                f"a subrequest from {peer} was refused: it is not in trusted_gateways (MCP_AUTH_TRUSTED_GATEWAYS); "
                "an ASGI server that applies X-Forwarded-For (uvicorn's default for 127.0.0.1) hides the gateway's "
                "address: run it with --no-proxy-headers",
            )
            await send_response(send, _UNTRUSTED)
            return
        except GatewayProblem as problem:
            self._say_once(logging.ERROR, f"a subrequest was refused: {problem}")
            await send_response(send, MISCONFIGURED)
            return
        except AmbiguousPath:
            # What the gateway routed, what the upstream serves and what public_paths match
            # could be three different paths: refused, whatever the token.
            await send_response(send, _AMBIGUOUS)
            return
        await self.checks(original, receive, send)

    def _is_check(self, path: str) -> bool:
        """The check path; with Envoy, whose ext_authz puts it before the original path, any
        (one that lacks it is a misconfiguration that original.py names)."""
        return path == self.options.check_path or self.options.gateway == "envoy"

    async def _allow(self, scope: Scope, receive: Receive, send: Send) -> None:
        """What runs when the checks pass: 200 with the caller for the upstream."""
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        # No caller on a public path: the request passes, naming nobody.
        headers = [_NO_STORE, (b"content-length", b"0"), *self.identity.headers(scope["state"].get("auth"))]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b""})

    def _say_once(self, level: int, line: str) -> None:
        if line not in self._said and len(self._said) < _MAX_SEEN:
            self._said.add(line)
            logger.log(level, "%s", line)


class _HeaderChecks(MCPAuthMiddleware):
    """The middleware's request path, deciding per tool from `Mcp-Method` and `Mcp-Name`
    instead of the body, which the gateway does not send."""

    def __init__(self, app: Any, config: AuthConfig, options: GatewayOptions) -> None:
        super().__init__(app, config)
        self.refuse_without_headers = options.without_mcp_headers == "refuse"
        # The gateways write X-Forwarded-For: behind them, it names the client for the guard.
        self._client_address.networks += parse_networks(options.trusted_gateways)
        # Lists are in the upstream's answers, which never pass through here.
        self._listings = None
        self._reads_messages = self._inspects_messages
        # A refused origin's preflight is a 403 here: a gateway passes every 2xx on to the upstream.
        self.refused_preflight = FORBIDDEN_ORIGIN

    async def _read_messages(
        self, body: bytes | None, receive: Receive, scope: Scope
    ) -> tuple[list[Any] | None, Receive]:
        """The message the headers describe; the middleware then checks that the headers agree
        with it (they do, unless one is malformed or missing) and decides its scopes."""
        method = name = None
        for header, value in scope["headers"]:
            if header == b"mcp-method":
                method = value
            elif header == b"mcp-name":
                name = value
        if method is None:
            if name is not None:  # a name without a method names nothing
                return [{"jsonrpc": "2.0"}], receive
            if self.refuse_without_headers and self._inspects_messages and scope["method"] == "POST":
                raise InvalidRequestError(
                    "This server decides per tool from the Mcp-Method and Mcp-Name headers of MCP 2026-07-28 "
                    "(with one MCP-Protocol-Version header of that version or later), and the request has none",
                    detail="no Mcp-Method header that the upstream must check: none, or an MCP-Protocol-Version "
                    "before 2026-07-28, missing or repeated (without_mcp_headers='refuse')",
                )
            return None, receive
        text = decode_header(method)
        if text is None:
            raise HeaderMismatchError("The Mcp-Method header is not a valid value (a malformed base64 form)")
        message: dict[str, Any] = {"jsonrpc": "2.0", "method": text}
        key = NAME_BEARING_METHODS.get(text)
        if key is not None and name is not None and (named := decode_header(name)) is not None:
            message["params"] = {key: named}
        return [message], receive


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message: Message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
