"""`CallerFromGateway`: for a Python MCP server behind the gateway service, the caller read
only from the signed `X-Auth-Assertion`, never from the plain identity headers.

The plain headers (`X-Auth-Subject`, ...) are as true as the gateway's configuration: a line
forgotten there and a client's own `X-Auth-Subject: mallory` reaches the server, and nothing
says so. A signature cannot be forgotten: this middleware verifies the assertion the service
signed (its type, signature, issuer, audience and lifetime), attaches the caller where the
middleware would (`request.state.auth`, `request.user`, `get_auth()`), and refuses a request
that has none, 403, with a WARNING once: it either did not come through the gateway or the
gateway does not pass the assertion on.
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from ..auth_info import AuthInfo
from ..challenge import RawResponse, send_response
from ..errors import AuthError, InvalidTokenError
from ..integrations.mcp import starlette_user, user_context_var
from ..jose import MalformedJOSE, json_object
from ..validators.claims import to_auth_info
from ..validators.jwks import JWKSKeys, import_keys
from .identity import verify_assertion

__all__ = ["CallerFromGateway"]

logger = logging.getLogger("mcp_auth_middleware")

_KEY_TYPES = {"ES": "EC", "RS": "RSA", "PS": "RSA", "Ed": "OKP"}
_REFUSED: RawResponse = (
    403,
    [(b"content-type", b"application/json"), (b"cache-control", b"no-store")],
    b'{"error": "forbidden", "error_description": "This server takes only requests its gateway vouched for"}',
)


class CallerFromGateway:
    """Pure ASGI: every HTTP request needs a valid assertion from the gateway service.

        app = CallerFromGateway(mcp.http_app(), issuer="https://mcp.example.com/mcp",
                                jwks_uri="http://127.0.0.1:9100/.well-known/jwks.json")

    `issuer` and `audience` are the service's `assertion_issuer` and resource (both the
    resource by default, so `audience` defaults to `issuer`); the keys are the service's
    (`keys=`: its JWKS, a JWK or a PEM public key; or `jwks_uri=`, fetched and cached).
    `public_paths` pass without one (exact, or a prefix ending in `*`), as the service lets
    them pass without a token.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        issuer: str,
        audience: str | None = None,
        keys: Any = None,
        jwks_uri: str | None = None,
        header: str = "X-Auth-Assertion",
        public_paths: tuple[str, ...] = (),
        allow_http: bool = False,
    ) -> None:
        if (keys is None) == (jwks_uri is None):
            raise ValueError("CallerFromGateway: pass the service's keys= or its jwks_uri=, one of them")
        self.app = app
        self.issuer, self.audience = issuer, audience or issuer
        self.header = header.lower().encode("ascii")
        self._static = import_keys(keys) if keys is not None else None
        self._jwks = JWKSKeys(jwks_uri, allow_http=allow_http) if jwks_uri is not None else None
        self._public_exact = {p for p in public_paths if not p.endswith("*")}
        self._public_prefixes = tuple(p[:-1] for p in public_paths if p.endswith("*"))
        self._warned = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        if scope["type"] != "http" or self._public(scope["path"]):
            await self.app(scope, receive, send)
            return
        values = [value for name, value in scope["headers"] if name == self.header]
        try:
            if len(values) != 1:
                raise InvalidTokenError(f"{len(values)} assertions, not one")
            info = await self._verify(values[0].decode("latin-1"))
        except AuthError as error:
            self._refused(scope, error)
            await send_response(send, _REFUSED)
            return
        scope.setdefault("state", {})["auth"] = info
        scope["user"] = user = info.derived(starlette_user)
        scope["auth"] = info.credentials
        reset = user_context_var.set(user)
        try:
            await self.app(scope, receive, send)
        finally:
            user_context_var.reset(reset)

    async def _verify(self, assertion: str) -> AuthInfo:
        keys = self._static
        if keys is None:
            assert self._jwks is not None
            try:
                header = json_object(assertion.split(".", 1)[0].encode("ascii"))
            except MalformedJOSE:
                raise InvalidTokenError("The identity assertion is malformed") from None
            alg, kid = header.get("alg"), header.get("kid")
            key_type = _KEY_TYPES.get(alg[:2]) if isinstance(alg, str) else None
            if key_type is None or not isinstance(kid, str | None):
                raise InvalidTokenError("The identity assertion is malformed")
            keys = await self._jwks.keys_for(kid, key_type)
        claims = verify_assertion(assertion, keys, issuer=self.issuer, audience=self.audience)
        # The caller's issuer is the access token's (`token_iss`), not the service that signed.
        claims = {**claims, "iss": claims.get("token_iss") or claims["iss"]}
        return to_auth_info(claims, scope_claims=("scope",), client_id_claims=("client_id",))

    def _public(self, path: str) -> bool:
        return path in self._public_exact or bool(self._public_prefixes and path.startswith(self._public_prefixes))

    def _refused(self, scope: Scope, error: AuthError) -> None:
        detail = error.detail or error.description
        if not self._warned:
            self._warned = True
            logger.warning(
                "a request without a valid %s was refused (%s): it did not come through the gateway, or the "
                "gateway does not pass the service's assertion on (docs/gateways.md); refusals after this one are "
                "logged at INFO",
                self.header.decode(),
                detail,
            )
        else:
            logger.info("gateway assertion refused for %s %s: %s", scope["method"], scope["path"], detail)
