"""A small OAuth 2.1 authorization server for development, demos and tests. Not for production.

Built on Authlib's server-side classes (grants, PKCE, registration, revocation, RFC 9068 JWT
access tokens); this module only adds in-memory storage, Starlette glue, resource indicators
(RFC 8707: the `resource` parameter becomes the token's audience, which Authlib leaves to the
application) and auto-approval as one configured user. It binds 127.0.0.1 by default.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qsl, urlsplit

from authlib.common.security import generate_token
from authlib.common.urls import add_params_to_uri
from authlib.oauth2 import AuthorizationServer as AuthlibServer
from authlib.oauth2 import OAuth2Request
from authlib.oauth2.rfc6749 import ClientMixin, grants
from authlib.oauth2.rfc6749.errors import InvalidRequestError, OAuth2Error
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload, JsonPayload, JsonRequest
from authlib.oauth2.rfc6750 import BearerTokenGenerator
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7591 import ClientRegistrationEndpoint
from authlib.oauth2.rfc7591.errors import InvalidClientMetadataError, InvalidRedirectURIError
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc9068 import JWTBearerTokenGenerator
from joserfc.jwk import KeySet, RSAKey
from starlette.applications import Starlette
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..body import BodyTooLargeError, read_body
from ..challenge import safe_description
from ..config import word_list
from .client_metadata import ClientMetadataDocuments
from .introspection import IntrospectionClient, IntrospectionEndpoint

__all__ = ["LocalAuthorizationServer"]

MAX_BODY = 64 * 1024
_audience: ContextVar[str | list[str] | None] = ContextVar("local_as_audience", default=None)
#: The lifetime `mint_token(expires_in=...)` asks for; Authlib's JWT generator reads it
#: through `_expires_in`, which otherwise gives the server's configured lifetime.
_lifetime: ContextVar[int | None] = ContextVar("local_as_lifetime", default=None)


class InvalidTargetError(OAuth2Error):  # type: ignore[misc]
    """RFC 8707 §2: the requested resource is invalid or not allowed."""

    error = "invalid_target"


@dataclass
class Client(ClientMixin):  # type: ignore[misc]
    client_id: str
    client_secret: str | None
    redirect_uris: list[str]
    grant_types: list[str]
    scope: str
    token_endpoint_auth_method: str
    client_name: str | None = None

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        return self.redirect_uris[0] if self.redirect_uris else None

    def get_allowed_scope(self, scope: str) -> str:
        if not scope:
            return ""
        allowed = set(self.scope.split())
        return " ".join(s for s in scope.split() if s in allowed)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        return self.client_secret is not None and secrets.compare_digest(self.client_secret, client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        if endpoint == "token":
            return method == self.token_endpoint_auth_method
        return method in ("client_secret_basic", "client_secret_post", "none")

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in self.grant_types


@dataclass
class User:
    sub: str

    def get_user_id(self) -> str:
        return self.sub


@dataclass
class AuthorizationCode:
    code: str
    client_id: str
    redirect_uri: str
    scope: str
    user: User
    resource: list[str]
    code_challenge: str | None
    code_challenge_method: str | None
    expires_at: float
    issued: list[str] = field(default_factory=list)  # tokens this code produced

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def is_expired(self) -> bool:
        return time.time() > self.expires_at


@dataclass
class Token:
    access_token: str
    refresh_token: str | None
    client_id: str
    scope: str
    sub: str
    resource: list[str]
    issued_at: int
    expires_in: int
    jti: str
    revoked: bool = False
    refresh_revoked: bool = False

    def check_client(self, client: Client) -> bool:
        return self.client_id == client.client_id

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        return self.expires_in

    def is_expired(self) -> bool:
        return time.time() >= self.issued_at + self.expires_in

    def is_revoked(self) -> bool:
        return self.revoked

    def get_user(self) -> User:
        return User(self.sub)

    def get_client(self) -> Any:
        return None

    def introspection(self, issuer: str) -> dict[str, Any]:
        return {
            "scope": self.scope,
            "client_id": self.client_id,
            "username": self.sub,
            "sub": self.sub,
            "token_type": "Bearer",
            "exp": self.issued_at + self.expires_in,
            "iat": self.issued_at,
            "aud": self.resource[0] if len(self.resource) == 1 else self.resource or None,
            "iss": issuer,
            "jti": self.jti,
        }


class _Request(OAuth2Request):  # type: ignore[misc]
    """Authlib's request, from a Starlette request whose form was read beforehand."""

    def __init__(self, request: Request, form: Mapping[str, str], datalist: dict[str, list[str]]) -> None:
        super().__init__(request.method, str(request.url), headers=request.headers)
        self._args = dict(request.query_params)
        self._form = dict(form)
        self.payload = BasicOAuth2Payload({**self._args, **self._form})
        self.payload._datalist = datalist
        self.resource: list[str] = []

    @property
    def args(self) -> dict[str, str]:
        return self._args

    @property
    def form(self) -> dict[str, str]:
        return self._form


def _owner(component: Any) -> LocalAuthorizationServer:
    """The LocalAuthorizationServer behind an Authlib grant or endpoint (Authlib is untyped)."""
    owner: LocalAuthorizationServer = component.server.owner
    return owner


class _Server(AuthlibServer):  # type: ignore[misc]
    def __init__(self, owner: LocalAuthorizationServer) -> None:
        super().__init__(scopes_supported=owner.scopes_supported)
        self.owner = owner

    def query_client(self, client_id: str) -> Client | None:
        return self.owner.clients.get(client_id)

    def save_token(self, token: dict[str, Any], request: _Request) -> None:
        user = request.user
        self.owner._save_token(
            token,
            client_id=request.client.client_id,
            sub=user.sub if user else request.client.client_id,
            resource=request.resource,
            code=request.authorization_code,
        )

    def create_oauth2_request(self, request: Any) -> OAuth2Request:
        return request  # built by the route handlers, which read the body asynchronously

    def create_json_request(self, request: Any) -> JsonRequest:
        return request

    def handle_response(self, status: int, body: Any, headers: Iterable[tuple[str, str]]) -> Response:
        header_map = dict(headers)
        if isinstance(body, dict):
            header_map.pop("Content-Type", None)
            return JSONResponse(body, status_code=status, headers=header_map)
        return Response(body or b"", status_code=status, headers=header_map)

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        pass


class _AuthorizationCodeGrant(grants.AuthorizationCodeGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]

    def save_authorization_code(self, code: str, request: _Request) -> None:
        payload = request.payload
        _owner(self).codes[code] = AuthorizationCode(
            code=code,
            client_id=request.client.client_id,
            redirect_uri=payload.redirect_uri or "",
            scope=request.scope or "",
            user=request.user,
            resource=request.resource,
            code_challenge=payload.data.get("code_challenge"),
            code_challenge_method=payload.data.get("code_challenge_method"),
            expires_at=time.time() + 300,
        )

    def query_authorization_code(self, code: str, client: Client) -> AuthorizationCode | None:
        owner = _owner(self)
        used = owner.used_codes.get(code)
        if used is not None:
            # RFC 6749 §4.1.2 / OAuth 2.1: a reused code revokes what it issued.
            owner.revoke_tokens(used.issued)
            return None
        item = owner.codes.get(code)
        if item is None or item.client_id != client.client_id or item.is_expired():
            return None
        return item

    def delete_authorization_code(self, authorization_code: AuthorizationCode) -> None:
        owner = _owner(self)
        owner.codes.pop(authorization_code.code, None)
        owner.used_codes[authorization_code.code] = authorization_code
        owner.last_code = authorization_code

    def authenticate_user(self, authorization_code: AuthorizationCode) -> User:
        return authorization_code.user


class _S256Only(CodeChallenge):  # type: ignore[misc]
    """PKCE is required, and only S256 (OAuth 2.1, MCP authorization)."""

    DEFAULT_CODE_CHALLENGE_METHOD = "S256"
    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        # Authlib lets an authorization request without PKCE through and fails it only at the
        # token endpoint; refusing it here tells the client at once.
        if not grant.request.payload.data.get("code_challenge"):
            raise InvalidRequestError(description="Missing 'code_challenge' (PKCE S256 is required)")
        super().validate_code_challenge(grant, redirect_uri)

    def get_authorization_code_challenge(self, authorization_code: AuthorizationCode) -> str | None:
        return authorization_code.code_challenge

    def get_authorization_code_challenge_method(self, authorization_code: AuthorizationCode) -> str | None:
        return authorization_code.code_challenge_method


class _RefreshTokenGrant(grants.RefreshTokenGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]
    INCLUDE_NEW_REFRESH_TOKEN = True  # rotation

    def authenticate_refresh_token(self, refresh_token: str) -> Token | None:
        token = _owner(self).by_refresh.get(refresh_token)
        if token is None or token.refresh_revoked:
            return None
        return token

    def authenticate_user(self, refresh_token: Token) -> User:
        return User(refresh_token.sub)

    def revoke_old_credential(self, refresh_token: Token) -> None:
        refresh_token.refresh_revoked = True


class _ClientCredentialsGrant(grants.ClientCredentialsGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]


class _Revocation(RevocationEndpoint):  # type: ignore[misc]
    CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]

    def query_token(self, token_string: str, token_type_hint: str | None) -> Token | None:
        owner = _owner(self)
        return owner.by_access.get(token_string) or owner.by_refresh.get(token_string)

    def revoke_token(self, token: Token, request: Any) -> None:
        token.revoked = True
        token.refresh_revoked = True


_GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials")
_AUTH_METHODS = ("client_secret_basic", "client_secret_post", "none")


def _check_client_metadata(metadata: Mapping[str, Any], scopes_supported: Iterable[str]) -> None:
    """RFC 7591 §3.2.2: metadata this server cannot honour is refused, naming the member."""
    redirect_uris = metadata.get("redirect_uris", [])
    if not isinstance(redirect_uris, list) or not all(isinstance(u, str) for u in redirect_uris):
        raise InvalidClientMetadataError(description="redirect_uris must be a list of URLs")
    for uri in redirect_uris:
        parts = urlsplit(uri)
        loopback = parts.scheme == "http" and (parts.hostname or "") in ("127.0.0.1", "localhost", "::1")
        not_a_uri = any(c.isspace() or c in '"<>\\{}|^`' for c in uri)  # RFC 3986 §2
        if parts.fragment or not parts.netloc or not (parts.scheme == "https" or loopback) or not_a_uri:
            raise InvalidRedirectURIError(
                description=f"redirect_uris: {safe_description(uri[:100])} is not an https or loopback "
                "http URL without fragment (OAuth 2.1 section 2.3.1)"
            )
    for member, allowed in (("grant_types", _GRANT_TYPES), ("response_types", ("code",))):
        values = metadata.get(member, [])
        if not isinstance(values, list) or any(v not in allowed for v in values):
            raise InvalidClientMetadataError(description=f"{member}: only {', '.join(allowed)} are supported")
    method = metadata.get("token_endpoint_auth_method", "client_secret_basic")
    if method not in _AUTH_METHODS:
        raise InvalidClientMetadataError(
            description=f"token_endpoint_auth_method: only {', '.join(_AUTH_METHODS)} are supported"
        )
    scope = metadata.get("scope", "")
    unknown = [s for s in scope.split() if s not in scopes_supported] if isinstance(scope, str) else [scope]
    if unknown:
        raise InvalidClientMetadataError(
            description=f"scope: {safe_description(' '.join(map(str, unknown)))} not supported"
        )


class _Registration(ClientRegistrationEndpoint):  # type: ignore[misc]
    def authenticate_token(self, request: Any) -> bool:
        return True  # open registration: this server is for development and tests

    def extract_client_metadata(self, request: Any) -> dict[str, Any]:
        _check_client_metadata(request.payload.data, _owner(self).scopes_supported)
        metadata: dict[str, Any] = super().extract_client_metadata(request)
        return metadata

    def generate_client_info(self, request: Any) -> dict[str, Any]:
        # RFC 7591 §3.2.1: every member a valid value or absent; a public client gets no
        # client_secret member at all (the TypeScript SDK's schema rejects null).
        info: dict[str, Any] = super().generate_client_info(request)
        if info.get("client_secret") is None:
            info.pop("client_secret", None)
            info.pop("client_secret_expires_at", None)
        return info

    def resolve_public_key(self, request: Any) -> None:
        return None

    def get_server_metadata(self) -> dict[str, Any]:
        return _owner(self).metadata

    def generate_client_secret(self, request: Any) -> str | None:
        if request.payload.data.get("token_endpoint_auth_method") == "none":
            return None  # public clients (PKCE) get no secret
        return secrets.token_urlsafe(32)

    def save_client(self, client_info: dict[str, Any], client_metadata: dict[str, Any], request: Any) -> Client:
        return _owner(self).register_client(
            client_id=client_info["client_id"],
            client_secret=client_info.get("client_secret"),
            redirect_uris=client_metadata.get("redirect_uris", []),
            grant_types=client_metadata.get("grant_types", ["authorization_code", "refresh_token"]),
            # A registered client may later ask for any supported scope (step-up, M15-M16);
            # its registration `scope` is only what it asks for first.
            scope=" ".join(_owner(self).scopes_supported),
            token_endpoint_auth_method=client_metadata.get("token_endpoint_auth_method", "client_secret_basic"),
            client_name=client_metadata.get("client_name"),
        )


class _JWTTokens(JWTBearerTokenGenerator):  # type: ignore[misc]
    def __init__(self, owner: LocalAuthorizationServer) -> None:
        super().__init__(owner.issuer, refresh_token_generator=_opaque, expires_generator=owner._expires_in)
        self.owner = owner

    def get_jwks(self) -> KeySet:
        return KeySet([self.owner.key])

    def get_audiences(self, client: Client, user: User | None, scope: str) -> str | list[str]:
        audience = _audience.get()
        return audience if audience else client.client_id


def _opaque(*args: Any, **kwargs: Any) -> str:
    return str(generate_token(48))


class LocalAuthorizationServer:
    """An in-memory OAuth 2.1 authorization server: `.app` is its ASGI app.

    `issuer` is the URL the server is reachable at (pick the port first, see
    `testing.free_port`). Authorization requests are approved automatically as `user`.
    """

    def __init__(
        self,
        issuer: str,
        *,
        user: str = "demo-user",
        token_format: Literal["jwt", "opaque"] = "jwt",
        scopes_supported: str | Iterable[str] = ("mcp",),
        access_token_ttl: int = 3600,
        default_resource: str | None = None,
        default_scopes: str | Iterable[str] | None = None,
        key: RSAKey | None = None,
        client_metadata_documents: ClientMetadataDocuments | None = None,
    ) -> None:
        self.issuer = issuer.rstrip("/")
        self.user = User(user)
        self.token_format = token_format
        self.scopes_supported = word_list(scopes_supported)
        # What a request that names no scope gets: never an empty-scope token, which every
        # resource server would refuse. By default the first supported scope (the base one).
        self.default_scopes = self.scopes_supported[:1] if default_scopes is None else word_list(default_scopes)
        self.access_token_ttl = access_token_ttl
        self.default_resource = default_resource
        self.key = key or RSAKey.generate_key(2048, parameters={"kid": secrets.token_hex(4), "use": "sig"})
        self.clients: dict[str, Client] = {}
        self.codes: dict[str, AuthorizationCode] = {}
        self.used_codes: dict[str, AuthorizationCode] = {}
        self.last_code: AuthorizationCode | None = None
        self.by_access: dict[str, Token] = {}
        self.by_refresh: dict[str, Token] = {}
        self.resource_servers: dict[str, IntrospectionClient] = {}
        # Clients whose client_id is the https URL of their metadata document (MCP 2025-11-25).
        self.client_metadata = client_metadata_documents or ClientMetadataDocuments()

        self.server = _Server(self)
        generator = (
            _JWTTokens(self) if token_format == "jwt" else BearerTokenGenerator(_opaque, _opaque, self._expires_in)
        )
        self.server.register_token_generator("default", generator)
        self.server.register_grant(_AuthorizationCodeGrant, [_S256Only(required=True)])
        self.server.register_grant(_RefreshTokenGrant)
        self.server.register_grant(_ClientCredentialsGrant)
        self.server.register_endpoint(_Revocation)
        self.server.register_endpoint(_Registration)
        self.introspection = IntrospectionEndpoint(self._lookup, self.resource_servers)
        self.metadata = self._metadata()
        routes = Starlette(
            routes=[
                Route("/.well-known/oauth-authorization-server", self._serve_metadata),
                Route("/.well-known/openid-configuration", self._serve_metadata),
                Route("/jwks", self._jwks),
                Route("/authorize", self._authorize, methods=["GET"]),
                Route("/token", self._token, methods=["POST"]),
                Route("/register", self._register, methods=["POST"]),
                Route("/revoke", self._revoke, methods=["POST"]),
                Route("/introspect", self.introspection, methods=["GET", "POST", "PUT", "DELETE"]),
            ]
        )
        #: The ASGI app: the routes above, as browser-based clients (MCP Inspector) need them.
        self.app = _ForBrowsers(routes)

    # -- configuration --------------------------------------------------------------------

    def register_client(
        self,
        *,
        client_id: str | None = None,
        client_secret: str | None = None,
        redirect_uris: Iterable[str] = (),
        grant_types: Iterable[str] = ("authorization_code", "refresh_token"),
        scope: str | None = None,
        token_endpoint_auth_method: str | None = None,
        client_name: str | None = None,
    ) -> Client:
        method = token_endpoint_auth_method or ("client_secret_basic" if client_secret else "none")
        client = Client(
            client_id=client_id or secrets.token_urlsafe(16),
            client_secret=client_secret,
            redirect_uris=list(redirect_uris),
            grant_types=list(grant_types),
            scope=scope if scope is not None else " ".join(self.scopes_supported),
            token_endpoint_auth_method=method,
            client_name=client_name,
        )
        self.clients[client.client_id] = client
        return client

    def register_resource_server(self, client_id: str, client_secret: str, resources: Iterable[str]) -> None:
        """A client allowed to introspect tokens issued for `resources`."""
        self.resource_servers[client_id] = IntrospectionClient.with_secret(client_id, client_secret, resources)

    def revoke_tokens(self, access_tokens: Iterable[str]) -> None:
        for value in access_tokens:
            token = self.by_access.get(value)
            if token is not None:
                token.revoked = token.refresh_revoked = True

    def _expires_in(self, client: Client, grant_type: str) -> int:
        lifetime = _lifetime.get()
        return self.access_token_ttl if lifetime is None else lifetime

    def _metadata(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "registration_endpoint": f"{self.issuer}/register",
            "revocation_endpoint": f"{self.issuer}/revoke",
            "introspection_endpoint": f"{self.issuer}/introspect",
            "jwks_uri": f"{self.issuer}/jwks",
            "scopes_supported": self.scopes_supported,
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
            "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
            "authorization_response_iss_parameter_supported": True,
            "client_id_metadata_document_supported": True,
        }

    # -- storage ----------------------------------------------------------------------------

    def _save_token(
        self,
        token: dict[str, Any],
        *,
        client_id: str,
        sub: str,
        resource: list[str],
        code: AuthorizationCode | None = None,
    ) -> None:
        record = Token(
            access_token=token["access_token"],
            refresh_token=token.get("refresh_token"),
            client_id=client_id,
            scope=token.get("scope", ""),
            sub=sub,
            resource=resource,
            issued_at=int(time.time()),
            expires_in=int(token.get("expires_in", self.access_token_ttl)),
            jti=secrets.token_urlsafe(12),
        )
        self.by_access[record.access_token] = record
        if record.refresh_token:
            self.by_refresh[record.refresh_token] = record
        if code is not None:
            code.issued.append(record.access_token)

    async def _lookup(self, token: str, hint: str | None) -> dict[str, Any] | None:
        # The hint only orders the search: a wrong hint still finds the token (RFC 7662 §2.1).
        stores = [self.by_refresh, self.by_access] if hint == "refresh_token" else [self.by_access, self.by_refresh]
        for store in stores:
            record = store.get(token)
            if record is None:
                continue
            is_refresh = store is self.by_refresh
            if record.refresh_revoked if is_refresh else record.revoked or record.is_expired():
                return None
            answer = record.introspection(self.issuer)
            if is_refresh:
                answer.update(token_type="refresh_token", exp=None)
            return answer
        return None

    # -- routes -----------------------------------------------------------------------------

    async def _serve_metadata(self, request: Request) -> Response:
        return JSONResponse(self.metadata)

    async def _jwks(self, request: Request) -> Response:
        public = {**self.key.as_dict(private=False), "use": "sig", "alg": "RS256"}
        return JSONResponse({"keys": [public]}, headers={"cache-control": "max-age=300"})

    async def _authorize(self, request: Request) -> Response:
        try:
            oauth_request = await _oauth_request(request)
            await self._client_from_document(oauth_request)
            self._default_scope(oauth_request)
            oauth_request.resource = self._resources(oauth_request, None)
            grant = self.server.get_authorization_grant(oauth_request)
        except OAuth2Error as error:
            return self.server.handle_error_response(None, error)  # type: ignore[no-any-return]
        response = self.server.create_authorization_response(oauth_request, grant_user=self.user, grant=grant)
        if isinstance(response, Response) and response.status_code == 302:
            # RFC 9207: every redirected authorization response names its issuer.
            location = add_params_to_uri(response.headers["location"], {"iss": self.issuer})
            return RedirectResponse(location, status_code=302)
        return response  # type: ignore[no-any-return]

    async def _token(self, request: Request) -> Response:
        try:
            oauth_request = await _oauth_request(request, form=True)
            await self._client_from_document(oauth_request)
            if oauth_request.payload.grant_type == "client_credentials":
                self._default_scope(oauth_request)
            granted = self._granted_resources(oauth_request)
            oauth_request.resource = self._resources(oauth_request, granted)
        except OAuth2Error as error:
            return self.server.handle_error_response(None, error)  # type: ignore[no-any-return]
        audience = oauth_request.resource[0] if len(oauth_request.resource) == 1 else oauth_request.resource
        reset = _audience.set(audience or None)
        try:
            return self.server.create_token_response(oauth_request)  # type: ignore[no-any-return]
        finally:
            _audience.reset(reset)

    async def _register(self, request: Request) -> Response:
        try:
            body, _ = await read_body(request.receive, MAX_BODY)  # bounded: never buffer a huge body
        except BodyTooLargeError:
            return JSONResponse(
                {"error": "invalid_client_metadata", "error_description": "The request body is too large"},
                status_code=413,
            )
        try:
            parsed = json.loads(body or b"null")
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict):
            return JSONResponse(
                {"error": "invalid_client_metadata", "error_description": "The body must be a JSON object"},
                status_code=400,
            )
        json_request = JsonRequest(request.method, str(request.url), request.headers)
        json_request.payload = _StaticJson(parsed)
        return self.server.create_endpoint_response("client_registration", json_request)  # type: ignore[no-any-return]

    async def _revoke(self, request: Request) -> Response:
        try:
            oauth_request = await _oauth_request(request, form=True)
        except OAuth2Error as error:
            return self.server.handle_error_response(None, error)  # type: ignore[no-any-return]
        return self.server.create_endpoint_response("revocation", oauth_request)  # type: ignore[no-any-return]

    async def _client_from_document(self, request: _Request) -> None:
        """A client_id that is a metadata document URL: the (cached) document is the client."""
        client_id = request.payload.data.get("client_id")
        if not isinstance(client_id, str) or not self.client_metadata.is_document_url(client_id):
            return
        document = await self.client_metadata.metadata(client_id)
        grant_types = document.get("grant_types", ["authorization_code", "refresh_token"])
        self.clients[client_id] = Client(
            client_id=client_id,
            client_secret=None,
            redirect_uris=list(document["redirect_uris"]),
            grant_types=[g for g in grant_types if g in ("authorization_code", "refresh_token")],
            scope=" ".join(self.scopes_supported),
            token_endpoint_auth_method="none",
            client_name=document.get("client_name") if isinstance(document.get("client_name"), str) else None,
        )

    def _default_scope(self, request: _Request) -> None:
        """RFC 6749 §3.3: without `scope`, the server's default scopes (never none at all)."""
        if not request.payload.data.get("scope") and self.default_scopes:
            request.payload.data["scope"] = " ".join(self.default_scopes)

    # -- RFC 8707 resource indicators ------------------------------------------------------

    def _granted_resources(self, request: _Request) -> list[str] | None:
        """Resources the grant behind a token request covers (None: anything allowed)."""
        grant_type = request.payload.grant_type
        if grant_type == "authorization_code":
            code = self.codes.get(request.payload.data.get("code", ""))
            return code.resource if code else None
        if grant_type == "refresh_token":
            token = self.by_refresh.get(request.payload.data.get("refresh_token", ""))
            return token.resource if token else None
        return None

    def _resources(self, request: _Request, granted: list[str] | None) -> list[str]:
        requested = request.payload.datalist.get("resource", [])
        for value in requested:
            parts = urlsplit(value)
            if not parts.scheme or not parts.netloc or parts.fragment or "#" in value:
                raise InvalidTargetError(description="resource must be an absolute URI without fragment")
        if granted is not None:
            if any(value not in granted for value in requested):
                raise InvalidTargetError(description="resource was not part of the grant")
            return list(requested) or list(granted)
        if requested:
            return list(requested)
        return [self.default_resource] if self.default_resource else []

    # -- for tests and the demo -------------------------------------------------------------

    def mint_token(
        self,
        *,
        sub: str | None = None,
        scopes: str | Iterable[str] = ("mcp",),
        audience: str | None = None,
        client_id: str = "test-client",
        expires_in: int | None = None,
    ) -> str:
        """Issue an access token directly, as if a grant had happened; stored, so it can be
        introspected and revoked like any other."""
        client = self.clients.get(client_id) or self.register_client(
            client_id=client_id, client_secret=secrets.token_urlsafe(16), grant_types=["client_credentials"]
        )
        resource = [audience] if audience else ([self.default_resource] if self.default_resource else [])
        ttl = self.access_token_ttl if expires_in is None else expires_in
        reset, reset_lifetime = (
            _audience.set(resource[0] if len(resource) == 1 else resource or None),
            _lifetime.set(ttl),
        )
        try:
            token = self.server.generate_token(
                grant_type="client_credentials",
                client=client,
                user=User(sub) if sub else None,
                scope=" ".join(word_list(scopes)),
                expires_in=ttl,
                include_refresh_token=False,
            )
        finally:
            _audience.reset(reset)
            _lifetime.reset(reset_lifetime)
        self._save_token(token, client_id=client.client_id, sub=sub or client.client_id, resource=resource)
        return str(token["access_token"])


#: Endpoints a browser-based client calls from its own origin.
_CORS_PATHS = frozenset(
    {
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
        "/jwks",
        "/register",
        "/token",
        "/revoke",
    }
)


class _ForBrowsers:
    """CORS on the endpoints browser clients call (preflights included), and
    `X-Content-Type-Options: nosniff` on every answer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.cors = CORSMiddleware(
            app, allow_origins=["*"], allow_methods=["GET", "POST", "OPTIONS"], allow_headers=["*"]
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_nosniff(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), (b"x-content-type-options", b"nosniff")]}
            await send(message)

        await (self.cors if scope["path"] in _CORS_PATHS else self.app)(scope, receive, send_nosniff)


class _StaticJson(JsonPayload):  # type: ignore[misc]
    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data

    @property
    def data(self) -> dict[str, Any]:
        return self._data


async def _oauth_request(request: Request, *, form: bool = False) -> _Request:
    values: dict[str, str] = {}
    datalist: dict[str, list[str]] = {}
    if form:
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/x-www-form-urlencoded":
            raise InvalidRequestError(description="Use application/x-www-form-urlencoded")
        try:
            body, _ = await read_body(request.receive, MAX_BODY)  # bounded: never buffer a huge body
        except BodyTooLargeError as exc:
            raise InvalidRequestError(description="The request body is too large") from exc
        for key, value in parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True):
            datalist.setdefault(key, []).append(value)
    for key, value in request.query_params.multi_items():
        datalist.setdefault(key, []).append(value)
    for key, value_list in datalist.items():
        # RFC 6749 §3.1: parameters must not repeat (resource, RFC 8707, may).
        if len(value_list) > 1 and key != "resource":
            raise InvalidRequestError(description="A parameter is repeated")
        values[key] = value_list[0]
    return _Request(request, values if form else {}, datalist)
