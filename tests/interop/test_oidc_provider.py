"""Against a real external authorization server: oidc-provider on 127.0.0.1 (issue: remote validation).

Discovery, JWT access tokens validated through its JWKS (with key rotation), opaque tokens
through its introspection endpoint with client authentication, revocation (RFC 7009).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import secrets
import time
from typing import Any

import httpx2
import pytest
from joserfc import jws
from joserfc.jwk import ECKey

from mcp_auth_middleware import (
    FallbackValidator,
    IntrospectionValidator,
    InvalidTokenError,
    JWKSKeys,
    JWTValidator,
    MCPAuthMiddleware,
    discover_authorization_server,
)
from mcp_auth_middleware.testing import serve

from ..conftest import asgi_client, bearer, echo_app, remember_token
from .conftest import RESOURCE_JWT, RESOURCE_OPAQUE, OIDCProvider

pytestmark = pytest.mark.interop


async def get_token(provider: OIDCProvider, resource: str, scope: str = "mcp") -> str:
    async with httpx2.AsyncClient() as http:
        response = await http.post(
            f"{provider.issuer}/token",
            auth=("mcp-client", "mcp-client-secret"),
            data={"grant_type": "client_credentials", "scope": scope, "resource": resource},
        )
    assert response.status_code == 200, response.text
    return remember_token(str(response.json()["access_token"]))


async def test_discovery(oidc_provider: OIDCProvider) -> None:
    document = await discover_authorization_server(oidc_provider.issuer)
    assert document["issuer"] == oidc_provider.issuer
    assert document["jwks_uri"].startswith(oidc_provider.issuer)
    assert document["introspection_endpoint"].startswith(oidc_provider.issuer)


async def test_jwt_access_token_through_the_one_line_form(oidc_provider: OIDCProvider) -> None:
    token = await get_token(oidc_provider, RESOURCE_JWT)
    assert token.count(".") == 2
    app = MCPAuthMiddleware(echo_app(), resource=RESOURCE_JWT, issuer=oidc_provider.issuer, required_scopes=["mcp"])
    async with asgi_client(app) as client:
        response = await client.post("/mcp", headers=bearer(token))
    assert response.status_code == 200, response.text
    assert response.json()["client_id"] == "mcp-client"
    assert response.json()["scopes"] == ["mcp"]


async def test_jwt_strict_rfc9068_mode(oidc_provider: OIDCProvider) -> None:
    token = await get_token(oidc_provider, RESOURCE_JWT)
    document = await discover_authorization_server(oidc_provider.issuer)
    validator = JWTValidator(
        issuer=oidc_provider.issuer, audience=RESOURCE_JWT, jwks_uri=document["jwks_uri"], require_at_jwt=True
    )
    assert (await validator.validate(token)).client_id == "mcp-client"


async def test_token_for_the_other_resource_rejected(oidc_provider: OIDCProvider) -> None:
    token = await get_token(oidc_provider, RESOURCE_JWT)
    app = MCPAuthMiddleware(echo_app(), resource="https://elsewhere.example.com/mcp", issuer=oidc_provider.issuer)
    async with asgi_client(app) as client:
        response = await client.post("/mcp", headers=bearer(token))
    assert response.status_code == 401


def introspection(provider: OIDCProvider, **options: Any) -> IntrospectionValidator:
    return IntrospectionValidator(
        f"{provider.issuer}/token/introspection",
        client_id="resource-server",
        client_secret="resource-server-secret",
        audience=RESOURCE_OPAQUE,
        issuer=provider.issuer,
        **options,
    )


@pytest.mark.parametrize("auth_method", ["client_secret_basic", "client_secret_post"])
async def test_opaque_token_introspected(oidc_provider: OIDCProvider, auth_method: str) -> None:
    token = await get_token(oidc_provider, RESOURCE_OPAQUE)
    assert token.count(".") == 0
    info = await introspection(oidc_provider, auth_method=auth_method).validate(token)
    assert info.client_id == "mcp-client" and info.scopes == {"mcp"}


async def test_one_line_introspection_with_discovery(oidc_provider: OIDCProvider) -> None:
    token = await get_token(oidc_provider, RESOURCE_OPAQUE)
    app = MCPAuthMiddleware(
        echo_app(),
        resource=RESOURCE_OPAQUE,
        issuer=oidc_provider.issuer,
        token_validation="introspection",
        client_id="resource-server",
        client_secret="resource-server-secret",
    )
    async with asgi_client(app) as client:
        assert (await client.post("/mcp", headers=bearer(token))).json()["client_id"] == "mcp-client"
        assert (await client.post("/mcp", headers=bearer("not-a-token"))).status_code == 401


async def test_wrong_introspection_credentials_are_a_misconfiguration_not_401(oidc_provider: OIDCProvider) -> None:
    # oidc-provider refuses the credentials: 503 without Retry-After (ConfigurationError), never
    # a 401 that would make the client drop its good token.
    token = await get_token(oidc_provider, RESOURCE_OPAQUE)
    validator = IntrospectionValidator(
        f"{oidc_provider.issuer}/token/introspection",
        client_id="resource-server",
        client_secret="wrong",
        audience=RESOURCE_OPAQUE,
    )
    from mcp_auth_middleware import ConfigurationError

    with pytest.raises(ConfigurationError) as caught:
        await validator.validate(token)
    assert "refused this resource server's client credentials" in str(caught.value.detail)
    assert caught.value.status == 503


async def test_revoked_token_inactive_after_cache_ttl(oidc_provider: OIDCProvider) -> None:
    token = await get_token(oidc_provider, RESOURCE_OPAQUE)
    validator = introspection(oidc_provider, cache_ttl=1.0)
    assert await validator.validate(token)
    async with httpx2.AsyncClient() as http:
        revoked = await http.post(
            f"{oidc_provider.issuer}/token/revocation",
            auth=("mcp-client", "mcp-client-secret"),
            data={"token": token, "token_type_hint": "access_token"},
        )
    assert revoked.status_code == 200, revoked.text
    assert await validator.validate(token)  # cached: still allowed within the TTL
    await asyncio.sleep(1.1)
    with pytest.raises(InvalidTokenError):
        await validator.validate(token)


async def test_fallback_jwt_first_then_introspection(oidc_provider: OIDCProvider) -> None:
    document = await discover_authorization_server(oidc_provider.issuer)
    jwt = JWTValidator(
        issuer=oidc_provider.issuer, audience=[RESOURCE_JWT, RESOURCE_OPAQUE], jwks_uri=document["jwks_uri"]
    )
    remote = introspection(oidc_provider).for_resource(RESOURCE_OPAQUE)
    fallback = FallbackValidator(jwt, remote)
    assert (await fallback.validate(await get_token(oidc_provider, RESOURCE_JWT))).client_id == "mcp-client"
    assert (await fallback.validate(await get_token(oidc_provider, RESOURCE_OPAQUE))).client_id == "mcp-client"
    assert remote.calls == 1


async def test_key_rotation(oidc_provider: OIDCProvider) -> None:
    document = await discover_authorization_server(oidc_provider.issuer)
    keys = JWKSKeys(document["jwks_uri"], refresh_cooldown=0.5)
    validator = JWTValidator(issuer=oidc_provider.issuer, audience=RESOURCE_JWT, key_source=keys)
    assert await validator.validate(await get_token(oidc_provider, RESOURCE_JWT))
    new_key = oidc_provider.rotate()
    await asyncio.sleep(0.6)
    token = await get_token(oidc_provider, RESOURCE_JWT)
    assert token.startswith("eyJ")
    info = await validator.validate(token)  # unknown kid -> one refetch -> the new key
    assert info.client_id == "mcp-client"
    assert new_key.kid in keys._index.kids
    assert keys.fetches == 2


# -- DPoP-bound tokens from oidc-provider (RFC 9449), through the middleware on uvicorn ---------

DPOP_KEY = ECKey.generate_key("P-256")


def dpop_proof(method: str, url: str, access_token: str | None = None) -> str:
    """A DPoP proof built with joserfc, as a client builds it (RFC 9449 §4.2)."""
    claims: dict[str, Any] = {"jti": secrets.token_urlsafe(12), "htm": method, "htu": url, "iat": int(time.time())}
    if access_token is not None:
        claims["ath"] = base64.urlsafe_b64encode(hashlib.sha256(access_token.encode()).digest()).rstrip(b"=").decode()
    header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": DPOP_KEY.as_dict(private=False)}
    return jws.serialize_compact(header, json.dumps(claims), DPOP_KEY)


async def get_dpop_token(provider: OIDCProvider, resource: str) -> str:
    async with httpx2.AsyncClient() as http:
        response = await http.post(
            f"{provider.issuer}/token",
            auth=("mcp-client", "mcp-client-secret"),
            data={"grant_type": "client_credentials", "scope": "mcp", "resource": resource},
            headers={"DPoP": dpop_proof("POST", f"{provider.issuer}/token")},
        )
    assert response.status_code == 200, response.text
    assert response.json()["token_type"] == "DPoP"  # bound to DPOP_KEY by oidc-provider
    return remember_token(str(response.json()["access_token"]))


@pytest.mark.parametrize("resource", [RESOURCE_JWT, RESOURCE_OPAQUE])
async def test_dpop_bound_tokens_from_oidc_provider_on_uvicorn(oidc_provider: OIDCProvider, resource: str) -> None:
    token = await get_dpop_token(oidc_provider, resource)
    options: dict[str, Any] = {"resource": resource, "issuer": oidc_provider.issuer, "dpop": True}
    if resource == RESOURCE_OPAQUE:
        options |= {"token_validation": "introspection", "client_id": "resource-server"}
        options |= {"client_secret": "resource-server-secret"}
    app = MCPAuthMiddleware(echo_app(), **options)
    with serve(app) as base:
        url = f"{base}/mcp"
        async with httpx2.AsyncClient() as http:
            # The proof names the public URL (resource), as a client behind a proxy sees it.
            accepted = await http.post(
                url, headers={"Authorization": f"DPoP {token}", "DPoP": dpop_proof("POST", resource, token)}
            )
            as_bearer = await http.post(url, headers={"Authorization": f"Bearer {token}"})
            stolen = await http.post(
                url,
                headers={"Authorization": f"DPoP {token}", "DPoP": proof_by_another_key(resource, token)},
            )
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["client_id"] == "mcp-client"
    assert as_bearer.status_code == 401  # RFC 9449 §7.2
    assert stolen.status_code == 401 and stolen.json()["error"] == "invalid_dpop_proof"


def proof_by_another_key(url: str, access_token: str) -> str:
    thief = ECKey.generate_key("P-256")
    ath = base64.urlsafe_b64encode(hashlib.sha256(access_token.encode()).digest()).rstrip(b"=").decode()
    claims = {"jti": secrets.token_urlsafe(12), "htm": "POST", "htu": url, "iat": int(time.time()), "ath": ath}
    header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": thief.as_dict(private=False)}
    return jws.serialize_compact(header, json.dumps(claims), thief)
