"""The identity providers people struggle with: token fixtures shaped like each provider's real
access tokens (from its public documentation), validated with exactly the settings of the
recipes in docs/identity-providers.md, and each wrong turn explained in the denial's log line
with the setting that fixes it (providers.py)."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import pytest
from joserfc import jwe
from joserfc.jwk import OctKey, RSAKey

from mcp_auth_middleware import InvalidTokenError, IssuerRouter, JWTValidator, TenantIssuers
from mcp_auth_middleware.providers import provider_of

from .validators.test_jwt import sign

RESOURCE = "https://mcp.example.com/mcp"
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
OTHER_TENANT = "9188040d-6c67-4c5b-b112-36a304b66dad"
APP_ID = "6e74172b-be56-4843-9ff4-e66a39bb12e3"  # the app registration's application (client) ID
ENTRA_V1 = f"https://sts.windows.net/{TENANT}/"
ENTRA_V2 = f"https://login.microsoftonline.com/{TENANT}/v2.0"
COGNITO = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbCdEf123"
COGNITO_CLIENT = "5g0example7cognitoclient1"


@pytest.fixture(scope="module")
def key() -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": "provider-key"})


def token(key: RSAKey, claims: dict[str, Any], typ: str = "JWT") -> str:
    now = int(time.time())
    return sign(key, {"iat": now, "nbf": now, "exp": now + 3600, **claims}, typ=typ)


def entra(version: str, tenant: str = TENANT, **extra: Any) -> dict[str, Any]:
    """An Entra ID access token's claims (learn.microsoft.com: access token claims reference)."""
    common = {
        "tid": tenant,
        "oid": "b9d3a9a6-oid",
        "sub": "AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ",
        "ver": version,
    }
    if version == "1.0":
        return {"iss": f"https://sts.windows.net/{tenant}/", "aud": f"api://{APP_ID}", "appid": "client-app",
                "scp": "Tools.Read", **common, **extra}  # fmt: skip
    return {"iss": f"https://login.microsoftonline.com/{tenant}/v2.0", "aud": APP_ID, "azp": "client-app",
            "scp": "Tools.Read", **common, **extra}  # fmt: skip


async def refused(validator: Any, raw: str) -> InvalidTokenError:
    with pytest.raises(InvalidTokenError) as denial:
        await validator.validate(raw)
    return denial.value


def test_the_provider_is_known_from_the_issuer() -> None:
    names = {
        ENTRA_V1: "entra",
        ENTRA_V2: "entra",
        COGNITO: "cognito",
        "https://tenant.eu.auth0.com/": "auth0",
        "https://dev-123.okta.com/oauth2/default": "okta",
        "https://kc.example.com/realms/mcp": "keycloak",
        "https://accounts.google.com": "google",
        "https://auth.example.com": None,
    }
    for issuer, name in names.items():
        found = provider_of(issuer)
        assert (found.key if found else None) == name, issuer


# -- Entra ID ------------------------------------------------------------------------------


async def test_entra_v1_and_v2_tokens_side_by_side(key: RSAKey) -> None:
    """The recipe: one validator per token version, each with its own issuer and audience."""
    validator = IssuerRouter(
        {
            ENTRA_V2: JWTValidator(issuer=ENTRA_V2, audience=APP_ID, keys=key, scope_claims=("scp", "roles")),
            ENTRA_V1: JWTValidator(
                issuer=ENTRA_V1, audience=f"api://{APP_ID}", keys=key, scope_claims=("scp", "roles")
            ),
        }
    )
    v1 = await validator.validate(token(key, entra("1.0", roles=["Notes.Admin"])))
    v2 = await validator.validate(token(key, entra("2.0")))
    assert (v1.client_id, v1.scopes) == ("client-app", {"Tools.Read", "Notes.Admin"})  # scp and roles
    assert (v2.client_id, v2.scopes) == ("client-app", {"Tools.Read"})
    assert (v1.issuer, v2.issuer) == (ENTRA_V1, ENTRA_V2)


async def test_entra_a_token_of_the_wrong_version_says_which_setting_fixes_it(key: RSAKey) -> None:
    v2_only = JWTValidator(issuer=ENTRA_V2, audience=APP_ID, keys=key, scope_claims=("scp", "roles"))
    denial = await refused(v2_only, token(key, entra("1.0")))
    assert "a v1.0 token, and this resource expects v2.0 tokens" in str(denial.detail)
    assert "set accessTokenAcceptedVersion to 2" in str(denial.detail)
    v1_only = JWTValidator(issuer=ENTRA_V1, audience=f"api://{APP_ID}", keys=key)
    denial = await refused(v1_only, token(key, entra("2.0")))
    assert "a v2.0 token, and this resource expects v1.0 tokens" in str(denial.detail)


async def test_entra_api_uri_and_client_id_audiences_are_explained(key: RSAKey) -> None:
    by_uri = JWTValidator(issuer=ENTRA_V2, audience=f"api://{APP_ID}", keys=key)
    denial = await refused(by_uri, token(key, entra("2.0")))
    assert f"Entra puts the app's client ID ({APP_ID}) in aud of v2.0 tokens" in str(denial.detail)
    graph = token(key, entra("2.0", aud="00000003-0000-0000-c000-000000000000"))
    denial = await refused(JWTValidator(issuer=ENTRA_V2, audience=APP_ID, keys=key), graph)
    assert "a token for Microsoft Graph" in str(denial.detail)


async def test_entra_multi_tenant_with_an_allow_list_of_tenants(key: RSAKey) -> None:
    """The recipe: an issuer per `tid` from a template, for the listed tenants only."""
    validator = IssuerRouter(
        {},
        tenants=TenantIssuers(
            "https://login.microsoftonline.com/{tenant}/v2.0",
            tenants=[TENANT],
            validator_for=lambda issuer: JWTValidator(issuer=issuer, audience=APP_ID, keys=key),
        ),
    )
    assert (await validator.validate(token(key, entra("2.0")))).issuer == ENTRA_V2
    denial = await refused(validator, token(key, entra("2.0", tenant=OTHER_TENANT)))
    assert f"tenant '{OTHER_TENANT}' is not in tenants=" in str(denial.detail)


# -- Cognito -----------------------------------------------------------------------------------


def cognito(**extra: Any) -> dict[str, Any]:
    """A Cognito user pool access token (docs.aws.amazon.com: the access token): no `aud`."""
    return {
        "iss": COGNITO,
        "sub": "aaaaaaaa-bbbb-cccc-dddd-example",
        "client_id": COGNITO_CLIENT,
        "token_use": "access",
        "scope": "mcp/tools.read",
        "auth_time": int(time.time()),
        "jti": "cognito-jti",
        "username": "alice",
        "origin_jti": "origin",
        "event_id": "event",
        "version": 2,
        **extra,
    }


def cognito_validator(key: RSAKey) -> JWTValidator:
    """docs/identity-providers.md, Cognito."""
    return JWTValidator(
        issuer=COGNITO,
        keys=key,
        audience=False,
        allowed_clients=[COGNITO_CLIENT],
        required_claims={"token_use": "access"},
    )


async def test_cognito_access_tokens_without_aud(key: RSAKey, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, "mcp_auth_middleware"):
        validator = cognito_validator(key)
    assert "audience binding is off" in caplog.text  # widening is loud
    info = await validator.validate(token(key, cognito()))
    assert (info.sub, info.client_id, info.scopes) == (cognito()["sub"], COGNITO_CLIENT, {"mcp/tools.read"})
    other_client = await refused(validator, token(key, cognito(client_id="someone-else")))
    assert "is not in allowed_clients" in str(other_client.detail)
    id_token = {**cognito(token_use="id", aud=COGNITO_CLIENT), "client_id": None}
    denial = await refused(validator, token(key, {k: v for k, v in id_token.items() if v is not None}))
    assert "an ID token, not an access token" in str(denial.detail)


async def test_cognito_with_the_default_settings_says_what_to_set(key: RSAKey) -> None:
    denial = await refused(JWTValidator(issuer=COGNITO, keys=key, audience=RESOURCE), token(key, cognito()))
    assert "Cognito access tokens carry no aud" in str(denial.detail)
    assert "allowed_clients" in str(denial.detail)


def test_audience_off_needs_the_clients_it_accepts(key: RSAKey) -> None:
    with pytest.raises(ValueError, match="audience=False needs allowed_clients"):
        JWTValidator(issuer=COGNITO, keys=key, audience=False)


# -- Auth0, Keycloak, Okta -----------------------------------------------------------------------


async def test_auth0_without_an_audience_sends_a_jwe_and_the_denial_says_so(key: RSAKey) -> None:
    """Auth0 encrypts the token when the client asks for no API (header: dir, A256GCM, iss)."""
    header = {"alg": "dir", "enc": "A256GCM", "iss": "https://tenant.eu.auth0.com/"}
    registry = jwe.JWERegistry(strict_check_header=False)  # Auth0 puts iss in the JOSE header
    encrypted = jwe.encrypt_compact(
        header, json.dumps({"sub": "auth0|abc"}), OctKey.generate_key(256), registry=registry
    )
    validator = JWTValidator(issuer="https://tenant.eu.auth0.com/", audience=RESOURCE, keys=key)
    denial = await refused(validator, encrypted)
    assert denial.description == "The access token is encrypted, not signed"
    assert "Auth0 issues an encrypted token when the client asks for no audience" in str(denial.detail)
    assert "audience = the API's Identifier" in str(denial.detail)


async def test_keycloak_without_an_audience_mapper(key: RSAKey) -> None:
    claims = {"iss": "https://kc.example.com/realms/mcp", "aud": "account", "azp": "mcp-inspector", "sub": "u1"}
    denial = await refused(JWTValidator(issuer=claims["iss"], keys=key, audience=RESOURCE), token(key, claims))
    assert "Audience mapper" in str(denial.detail) and "Included Custom Audience" in str(denial.detail)


async def test_okta_org_authorization_server(key: RSAKey) -> None:
    org = {"iss": "https://dev-123.okta.com", "aud": "https://dev-123.okta.com", "cid": "0oa1", "sub": "u1"}
    recipe = JWTValidator(issuer="https://dev-123.okta.com/oauth2/default", keys=key, audience=RESOURCE)
    denial = await refused(recipe, token(key, org))
    assert "Okta's org authorization server" in str(denial.detail)
    assert "oauth2/default" in str(denial.detail)
    at_org = JWTValidator(issuer="https://dev-123.okta.com", keys=key, audience=RESOURCE)
    denial = await refused(at_org, token(key, org))
    assert "only for Okta's own APIs" in str(denial.detail)


def test_an_issuer_that_is_no_url_is_no_provider() -> None:
    for value in ("http://[", "https://[::1", 42, None, "", "not a url"):
        assert provider_of(value) is None


# -- Tokens whose denial a provider explains, as they are really issued -----------------------


async def test_a_microsoft_graph_token_is_named_as_one_not_as_a_bad_signature(key: RSAKey) -> None:
    """Graph's tokens carry a `nonce` in their header that only Graph undoes before verifying:
    to anyone else the signature fails. They are v1.0 tokens for Graph's audience."""
    graph = entra("1.0", aud="https://graph.microsoft.com", scp="User.Read")
    other_key = RSAKey.generate_key(2048, parameters={"kid": "provider-key"})  # same kid, as Graph's use Entra's
    raw = sign(other_key, {"iat": int(time.time()), "exp": int(time.time()) + 3600, **graph}, typ="JWT", nonce="n0")
    v2 = JWTValidator(issuer=ENTRA_V2, audience=APP_ID, keys=key, scope_claims=("scp", "roles"))
    denial = await refused(v2, raw)
    assert denial.description == "The access token signature is invalid"
    assert "a token for Microsoft Graph" in str(denial.detail)
    assert "accessTokenAcceptedVersion" not in str(denial.detail)  # not the fix for this one
    # Verifiable (say, a test key): still Graph, not the token version.
    readable = token(key, graph)
    assert "a token for Microsoft Graph" in str((await refused(v2, readable)).detail)
    assert "accessTokenAcceptedVersion" not in str((await refused(v2, readable)).detail)


async def test_a_keycloak_token_without_aud_names_the_audience_mapper(key: RSAKey) -> None:
    claims = {"iss": "https://kc.example.com/realms/mcp", "azp": "mcp-inspector", "sub": "u1", "scope": "mcp"}
    denial = await refused(JWTValidator(issuer=claims["iss"], keys=key, audience=RESOURCE), token(key, claims))
    assert "aud missing" in str(denial.detail) and "Audience mapper" in str(denial.detail)


async def test_a_token_from_oktas_org_server_signed_by_its_own_keys(key: RSAKey) -> None:
    org_key = RSAKey.generate_key(2048, parameters={"kid": "org-server-key"})
    org = {"iss": "https://dev-123.okta.com", "aud": "https://dev-123.okta.com", "cid": "0oa1", "sub": "u1"}
    now = int(time.time())
    raw = sign(org_key, {"iat": now, "exp": now + 3600, **org}, typ="JWT")
    recipe = JWTValidator(issuer="https://dev-123.okta.com/oauth2/default", keys=key, audience=RESOURCE)
    denial = await refused(recipe, raw)
    assert "no RSA key with key id 'org-server-key'" in str(denial.detail)
    assert "Okta's org authorization server" in str(denial.detail) and "custom authorization server" in str(
        denial.detail
    )


async def test_an_id_token_is_named_as_one(key: RSAKey) -> None:
    issuer = "https://auth.example.com"
    id_token = {"iss": issuer, "aud": "client-app", "sub": "u1", "nonce": "n-0S6_WzA2Mj", "at_hash": "77QmUPtjPfzW"}
    denial = await refused(JWTValidator(issuer=issuer, keys=key, audience=RESOURCE), token(key, id_token))
    assert "an ID token, not an access token" in str(denial.detail)
    access = {"iss": issuer, "aud": "https://other.example/mcp", "sub": "u1", "scope": "mcp", "client_id": "c"}
    assert "ID token" not in str((await refused(JWTValidator(issuer=issuer, keys=key, audience=RESOURCE),
                                                 token(key, access))).detail)  # fmt: skip
