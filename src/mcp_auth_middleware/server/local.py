"""A small OAuth 2.1 authorization server for development, demos and tests. Not for production.

Built on Authlib's server-side classes; the modules beside this one hold one protocol each:
`grants` (RFC 6749, RFC 7636 PKCE), `registration` (RFC 7591), `client_metadata` (Client ID
Metadata Documents), `revocation` (RFC 7009), `introspection` (RFC 7662), `jwt_tokens`
(RFC 9068), `resource_indicators` (RFC 8707), `browsers` (CORS), `bridge` (Authlib on
Starlette), `models` (in-memory records). This one wires them together, serves the RFC 8414
metadata and keeps the records. Authorization requests are approved automatically as one
configured user. It binds 127.0.0.1 by default.
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from authlib.common.urls import add_params_to_uri
from authlib.oauth2.rfc6749.errors import OAuth2Error
from authlib.oauth2.rfc6749.requests import JsonRequest
from authlib.oauth2.rfc6750 import BearerTokenGenerator
from joserfc.jwk import RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from ..body import read_body
from ..config import DEFAULT_DPOP_ALGORITHMS
from ..dpop import DPoPVerifier
from ..errors import AuthError, BodyTooLargeError
from ..values import word_list
from .bridge import MAX_BODY, OAuthRequest, Server, StaticJson, quiet_authlib_logs, read_oauth_request
from .browsers import ForBrowsers
from .client_assertions import PRIVATE_KEY_JWT, PrivateKeyJWT
from .client_metadata import ClientMetadataDocuments
from .grants import AuthorizationCodeGrant, ClientCredentialsGrant, RefreshTokenGrant, S256Only
from .identity_assertion import JWT_BEARER, IdentityAssertionGrant, TrustedIdentityProvider
from .introspection import IntrospectionClient, IntrospectionEndpoint
from .jwt_tokens import JWTTokens, issuing, opaque_token, token_lifetime
from .models import AuthorizationCode, Client, ExchangePolicy, Token, User
from .registration import Registration
from .replays import Replays
from .resource_indicators import select_resources
from .revocation import Revocation
from .token_exchange import TOKEN_EXCHANGE, TokenExchangeGrant, bound_key, dpop_refusal

__all__ = ["LocalAuthorizationServer"]


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
        registrations_file: str | os.PathLike[str] | None = None,
        dpop_nonces: bool = False,
        replay_storage: str = "memory://",
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
        self.exchange_policies: dict[str, ExchangePolicy] = {}
        # DPoP proofs at the token endpoint (RFC 9449 §5), for tokens a token exchange binds.
        self.dpop = DPoPVerifier(nonces=dpop_nonces)
        # Dynamically registered clients survive a restart when a file keeps them (development:
        # their secrets are stored as they are, in a file only its owner can read).
        self.registrations_file = Path(registrations_file) if registrations_file else None
        if self.registrations_file is not None and self.registrations_file.exists():
            for record in json.loads(self.registrations_file.read_text()):
                self.clients[record["client_id"]] = Client(**record)
        # Clients whose client_id is the https URL of their metadata document (MCP 2025-11-25).
        self.client_metadata = client_metadata_documents or ClientMetadataDocuments()

        quiet_authlib_logs()
        self.server = Server(self)
        generator = (
            JWTTokens(self)
            if token_format == "jwt"
            else BearerTokenGenerator(opaque_token, opaque_token, self.expires_in)
        )
        self.server.register_token_generator("default", generator)
        self.server.register_grant(AuthorizationCodeGrant, [S256Only(required=True)])
        self.server.register_grant(RefreshTokenGrant)
        self.server.register_grant(ClientCredentialsGrant)
        self.server.register_grant(TokenExchangeGrant)
        self.server.register_grant(IdentityAssertionGrant)
        # Each ID-JAG and client assertion once (in Redis/Valkey when replicas share one).
        self.replays = Replays(replay_storage)
        self.identity_providers: dict[str, TrustedIdentityProvider] = {}
        self.server.register_client_auth_method(PRIVATE_KEY_JWT, PrivateKeyJWT(self, self.replays))
        self.server.register_endpoint(Revocation)
        self.server.register_endpoint(Registration)
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
        self.app = ForBrowsers(routes)

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
        jwks: dict[str, Any] | None = None,
    ) -> Client:
        """A client; with `jwks` (its public keys), one that authenticates with `private_key_jwt`
        (RFC 7523 §2.2)."""
        default = PRIVATE_KEY_JWT if jwks else "client_secret_basic" if client_secret else "none"
        method = token_endpoint_auth_method or default
        client = Client(
            client_id=client_id or secrets.token_urlsafe(16),
            client_secret=client_secret,
            redirect_uris=list(redirect_uris),
            grant_types=list(grant_types),
            scope=scope if scope is not None else " ".join(self.scopes_supported),
            token_endpoint_auth_method=method,
            client_name=client_name,
            jwks=jwks,
        )
        self.clients[client.client_id] = client
        return client

    def keep_registration(self, client: Client) -> None:
        """Write a dynamically registered client to `registrations_file`, if there is one."""
        if self.registrations_file is None:
            return
        records = json.loads(self.registrations_file.read_text()) if self.registrations_file.exists() else []
        records = [r for r in records if r["client_id"] != client.client_id] + [dataclasses.asdict(client)]
        temporary = self.registrations_file.with_suffix(".tmp")
        temporary.write_text(json.dumps(records, indent=1))
        temporary.chmod(0o600)
        temporary.replace(self.registrations_file)

    def register_resource_server(self, client_id: str, client_secret: str, resources: Iterable[str]) -> None:
        """A client allowed to introspect tokens issued for `resources`."""
        self.resource_servers[client_id] = IntrospectionClient.with_secret(client_id, client_secret, resources)

    def allow_token_exchange(
        self,
        client_id: str,
        *,
        from_resources: Iterable[str],
        to_resources: Iterable[str],
        scopes: str | Iterable[str] | None = None,
    ) -> None:
        """Let a confidential client (a resource server) exchange tokens issued for
        `from_resources` for tokens to `to_resources` (RFC 8693), with at most `scopes`."""
        client = self.clients.get(client_id)
        if client is None or not client.client_secret:
            raise ValueError(f"register {client_id!r} first, with a client_secret (a confidential client)")
        if TOKEN_EXCHANGE not in client.grant_types:
            client.grant_types.append(TOKEN_EXCHANGE)
        self.exchange_policies[client_id] = ExchangePolicy.of(from_resources, to_resources, scopes)

    def trust_identity_provider(self, issuer: str, keys: Any, *, resources: Iterable[str]) -> None:
        """Accept ID-JAGs (the jwt-bearer grant; MCP Enterprise-Managed Authorization) signed by
        `issuer` with `keys` (its JWKS, a JWK or a PEM public key), for `resources` only."""
        self.identity_providers[issuer] = TrustedIdentityProvider.of(issuer, keys, resources)

    def allow_identity_assertions(self, client_id: str) -> None:
        """Let a registered confidential client present ID-JAGs (the jwt-bearer grant)."""
        client = self.clients.get(client_id)
        if client is None or not (client.client_secret or client.jwks):
            raise ValueError(f"register {client_id!r} first, with a client_secret or jwks (a confidential client)")
        if JWT_BEARER not in client.grant_types:
            client.grant_types.append(JWT_BEARER)

    def revoke_tokens(self, access_tokens: Iterable[str]) -> None:
        for value in access_tokens:
            token = self.by_access.get(value)
            if token is not None:
                token.revoked = token.refresh_revoked = True

    def revoke_family(self, family: str) -> None:
        """Every access and refresh token issued in one chain of refresh-token rotations."""
        for token in self.by_access.values():
            if token.family == family:
                token.revoked = token.refresh_revoked = True

    def expires_in(self, client: Client, grant_type: str) -> int:
        lifetime = token_lifetime.get()
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
            "grant_types_supported": [
                "authorization_code",
                "refresh_token",
                "client_credentials",
                TOKEN_EXCHANGE,
                JWT_BEARER,
            ],
            "dpop_signing_alg_values_supported": list(DEFAULT_DPOP_ALGORITHMS),
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": [
                "client_secret_basic",
                "client_secret_post",
                PRIVATE_KEY_JWT,
                "none",
            ],
            "token_endpoint_auth_signing_alg_values_supported": ["RS256", "ES256", "EdDSA"],
            "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
            "authorization_response_iss_parameter_supported": True,
            "client_id_metadata_document_supported": True,
        }

    # -- storage ----------------------------------------------------------------------------

    def save_token(
        self,
        token: dict[str, Any],
        *,
        client_id: str,
        sub: str,
        resource: list[str],
        code: AuthorizationCode | None = None,
        dpop_jkt: str | None = None,
        family: str | None = None,
        act: dict[str, Any] | None = None,
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
            dpop_jkt=dpop_jkt,
            act=act,
        )
        if family is not None:
            record.family = family
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
            oauth_request = await read_oauth_request(request)
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
            oauth_request = await read_oauth_request(request, form=True)
            await self._client_from_document(oauth_request)
            if oauth_request.payload.grant_type == "client_credentials":
                self._default_scope(oauth_request)
            granted = self._granted_resources(oauth_request)
            oauth_request.resource = self._resources(oauth_request, granted)
        except OAuth2Error as error:
            return self.server.handle_error_response(None, error)  # type: ignore[no-any-return]
        try:
            jkt = await bound_key(self.dpop, request, oauth_request.payload.grant_type, self.metadata["token_endpoint"])
        except AuthError as error:
            return dpop_refusal(error)
        with issuing(audience=oauth_request.resource, confirmation=jkt):
            return self.server.create_token_response(oauth_request)  # type: ignore[no-any-return]

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
        json_request.payload = StaticJson(parsed)
        return self.server.create_endpoint_response("client_registration", json_request)  # type: ignore[no-any-return]

    async def _revoke(self, request: Request) -> Response:
        try:
            oauth_request = await read_oauth_request(request, form=True)
        except OAuth2Error as error:
            return self.server.handle_error_response(None, error)  # type: ignore[no-any-return]
        return self.server.create_endpoint_response("revocation", oauth_request)  # type: ignore[no-any-return]

    async def _client_from_document(self, request: OAuthRequest) -> None:
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

    def _default_scope(self, request: OAuthRequest) -> None:
        """RFC 6749 §3.3: without `scope`, the server's default scopes (never none at all)."""
        if not request.payload.data.get("scope") and self.default_scopes:
            request.payload.data["scope"] = " ".join(self.default_scopes)

    # -- RFC 8707 resource indicators ------------------------------------------------------

    def _granted_resources(self, request: OAuthRequest) -> list[str] | None:
        """Resources the grant behind a token request covers (None: anything allowed)."""
        grant_type = request.payload.grant_type
        if grant_type == "authorization_code":
            code = self.codes.get(request.payload.data.get("code", ""))
            return code.resource if code else None
        if grant_type == "refresh_token":
            token = self.by_refresh.get(request.payload.data.get("refresh_token", ""))
            return token.resource if token else None
        return None

    def _resources(self, request: OAuthRequest, granted: list[str] | None) -> list[str]:
        return select_resources(request.payload.datalist.get("resource", []), granted, self.default_resource)

    # -- for tests and the demo -------------------------------------------------------------

    def mint_token(
        self,
        *,
        sub: str | None = None,
        scopes: str | Iterable[str] = ("mcp",),
        audience: str | None = None,
        client_id: str = "test-client",
        expires_in: int | None = None,
        dpop_jkt: str | None = None,
    ) -> str:
        """Issue an access token directly, as if a grant had happened; stored, so it can be
        introspected and revoked like any other. `dpop_jkt` binds it to a DPoP key (RFC 9449 §6):
        `cnf.jkt` in a JWT, and in the introspection answer of an opaque token."""
        client = self.clients.get(client_id) or self.register_client(
            client_id=client_id, client_secret=secrets.token_urlsafe(16), grant_types=["client_credentials"]
        )
        resource = [audience] if audience else ([self.default_resource] if self.default_resource else [])
        ttl = self.access_token_ttl if expires_in is None else expires_in
        with issuing(audience=resource, lifetime=ttl, confirmation=dpop_jkt):
            token = self.server.generate_token(
                grant_type="client_credentials",
                client=client,
                user=User(sub) if sub else None,
                scope=" ".join(word_list(scopes)),
                expires_in=ttl,
                include_refresh_token=False,
            )
        self.save_token(
            token, client_id=client.client_id, sub=sub or client.client_id, resource=resource, dpop_jkt=dpop_jkt
        )
        return str(token["access_token"])
