"""An enterprise identity provider for tests and development: it signs users in (an ID token, as
single sign-on leaves the client with) and, in the first leg of the Identity Assertion
Authorization Grant (draft-ietf-oauth-identity-assertion-authz-grant §4.3; MCP's
Enterprise-Managed Authorization, SEP-990), trades that ID token for an ID-JAG by RFC 8693 token
exchange, under the enterprise's policy: which client may reach which authorization server, for
which resources, with which scopes. The second leg is the authorization server's jwt-bearer grant
(`LocalAuthorizationServer.trust_identity_provider`).
"""

from __future__ import annotations

import base64
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from joserfc import jwt
from joserfc.jwk import RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ..values import word_list
from .identity_assertion import ID_JAG_TYPE

__all__ = ["ID_JAG_TOKEN_TYPE", "ID_TOKEN_TYPE", "EnterpriseIdentityProvider"]

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ID_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:id_token"
ID_JAG_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:id-jag"


@dataclass(frozen=True)
class _Policy:
    audience: str
    resources: frozenset[str]
    scopes: frozenset[str]


class EnterpriseIdentityProvider:
    """`EnterpriseIdentityProvider("http://127.0.0.1:9200")`; `register_client`, `allow`, then
    serve `app`. `id_token(sub, client_id)` is what single sign-on gives the client;
    `id_jag(...)` mints an ID-JAG directly (a test's own, forged or not)."""

    def __init__(self, issuer: str, *, key: RSAKey | None = None, id_jag_lifetime: int = 300) -> None:
        self.issuer = issuer.rstrip("/")
        self.key = key or RSAKey.generate_key(2048, parameters={"kid": secrets.token_hex(4)}, private=True)
        self.id_jag_lifetime = id_jag_lifetime
        self.clients: dict[str, str] = {}
        self.policies: dict[str, list[_Policy]] = {}
        metadata = {
            "issuer": self.issuer,
            "token_endpoint": f"{self.issuer}/token",
            "jwks_uri": f"{self.issuer}/jwks",
            "grant_types_supported": [TOKEN_EXCHANGE],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        }
        self.app = Starlette(
            routes=[
                Route("/.well-known/openid-configuration", lambda request: JSONResponse(metadata)),
                Route("/.well-known/oauth-authorization-server", lambda request: JSONResponse(metadata)),
                Route("/jwks", lambda request: JSONResponse(self.jwks)),
                Route("/token", self._token, methods=["POST"]),
            ]
        )

    @property
    def jwks(self) -> dict[str, Any]:
        """The public keys, for `LocalAuthorizationServer.trust_identity_provider`."""
        return {"keys": [{**self.key.as_dict(private=False), "use": "sig", "alg": "RS256"}]}

    def register_client(self, client_id: str, client_secret: str) -> None:
        self.clients[client_id] = client_secret

    def allow(self, client_id: str, *, audience: str, resources: Iterable[str], scopes: str | Iterable[str]) -> None:
        """Let `client_id` get ID-JAGs for the authorization server `audience`, for `resources`,
        with at most `scopes` (the enterprise's decision, made once for every user)."""
        policy = _Policy(audience, frozenset(resources), frozenset(word_list(scopes)))
        self.policies.setdefault(client_id, []).append(policy)

    def id_token(self, sub: str, client_id: str, *, lifetime: int = 3600) -> str:
        """An OpenID Connect ID token for `sub`, as single sign-on gives it to `client_id`."""
        now = int(time.time())
        claims = {"iss": self.issuer, "sub": sub, "aud": client_id, "iat": now, "exp": now + lifetime}
        return jwt.encode({"alg": "RS256", "kid": self.key.kid, "typ": "JWT"}, claims, self.key)

    def id_jag(
        self,
        *,
        sub: str,
        client_id: str,
        audience: str,
        resource: str,
        scopes: str | Iterable[str],
        lifetime: int | None = None,
        **claims: Any,
    ) -> str:
        """An ID-JAG signed by this provider: `claims` add to (or replace) the usual ones."""
        now = int(time.time())
        body = {
            "iss": self.issuer,
            "sub": sub,
            "aud": audience,
            "client_id": client_id,
            "resource": resource,
            "scope": " ".join(word_list(scopes)),
            "iat": now,
            "exp": now + (self.id_jag_lifetime if lifetime is None else lifetime),
            "jti": secrets.token_urlsafe(16),
            **claims,
        }
        return jwt.encode({"alg": "RS256", "kid": self.key.kid, "typ": ID_JAG_TYPE}, body, self.key)

    async def _token(self, request: Request) -> JSONResponse:
        form = await request.form()
        data = {name: str(value) for name, value in form.items()}
        client_id = self._authenticated(request, data)
        if client_id is None:
            return _error("invalid_client", "Client authentication failed", 401)
        if data.get("grant_type") != TOKEN_EXCHANGE or data.get("requested_token_type") != ID_JAG_TOKEN_TYPE:
            return _error("unsupported_grant_type", "Only token exchange for an ID-JAG is offered here")
        if data.get("subject_token_type") != ID_TOKEN_TYPE:
            return _error("invalid_request", "The subject token is an ID token")
        try:
            subject = jwt.decode(data.get("subject_token", ""), self.key, algorithms=["RS256"]).claims
        except Exception:
            return _error("invalid_grant", "The subject token is not an ID token of this provider")
        if subject.get("iss") != self.issuer or subject.get("aud") != client_id or subject.get("exp", 0) < time.time():
            return _error("invalid_grant", "The ID token is not valid for this client")
        audience, resource = data.get("audience", ""), data.get("resource", "")
        policy = next(
            (p for p in self.policies.get(client_id, []) if p.audience == audience and resource in p.resources), None
        )
        if policy is None:
            return _error("invalid_target", "The enterprise does not let this client reach that server or resource")
        asked = set(word_list(data.get("scope"))) or set(policy.scopes)
        scopes = asked & policy.scopes
        if not scopes:
            return _error("invalid_scope", "None of the scopes asked is allowed for this client")
        id_jag = self.id_jag(
            sub=str(subject["sub"]), client_id=client_id, audience=audience, resource=resource, scopes=sorted(scopes)
        )
        return JSONResponse(
            {
                "access_token": id_jag,
                "issued_token_type": ID_JAG_TOKEN_TYPE,
                "token_type": "N_A",
                "expires_in": self.id_jag_lifetime,
                "scope": " ".join(sorted(scopes)),
            },
            headers={"cache-control": "no-store"},
        )

    def _authenticated(self, request: Request, data: dict[str, str]) -> str | None:
        client_id, secret = data.get("client_id"), data.get("client_secret")
        header = request.headers.get("authorization", "")
        if header.lower().startswith("basic "):
            try:
                decoded = base64.b64decode(header[6:]).decode()
            except ValueError:
                return None
            client_id, _, secret = (unquote(part) for part in decoded.partition(":"))
        known = self.clients.get(client_id or "")
        if known is None or secret is None or not secrets.compare_digest(known, secret):
            return None
        return client_id


def _error(error: str, description: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": error, "error_description": description}, status, {"cache-control": "no-store"})
