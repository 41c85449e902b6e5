"""Identity providers as users meet them: which one issued a token (known from its issuer),
and for the denials that a setting at the provider (or here) fixes, which setting.

The validators add these words to a denial's log line, and `mcp-oauth-middleware check` prints
the same line: one source for both. Only what the provider's own documentation says about its
tokens is used here (docs/identity-providers.md has the recipes); a token's claims are read
after its signature verified, or, for an encrypted one, only its header.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

__all__ = [
    "Provider",
    "audience_advice",
    "encrypted_advice",
    "issuer_advice",
    "missing_claims_advice",
    "provider_of",
    "signature_advice",
]

_GRAPH = "00000003-0000-0000-c000-000000000000"
_GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I)


@dataclass(frozen=True)
class Provider:
    """A provider, as its issuer URLs show it."""

    key: str
    name: str


ENTRA = Provider("entra", "Microsoft Entra ID")
COGNITO = Provider("cognito", "Amazon Cognito")
AUTH0 = Provider("auth0", "Auth0")
OKTA = Provider("okta", "Okta")
KEYCLOAK = Provider("keycloak", "Keycloak")
GOOGLE = Provider("google", "Google")


def provider_of(issuer: object) -> Provider | None:
    """The provider an issuer URL belongs to, or None for one we know nothing special about."""
    if not isinstance(issuer, str):
        return None
    try:  # a value from a token: anything at all
        parts = urlsplit(issuer)
        host, path = (parts.hostname or "").lower(), parts.path
    except ValueError:
        return None
    if host in ("login.microsoftonline.com", "sts.windows.net") or host.endswith(".ciamlogin.com"):
        return ENTRA
    if host.startswith("cognito-idp.") and host.endswith(".amazonaws.com"):
        return COGNITO
    if host.endswith(".auth0.com"):
        return AUTH0
    if host.endswith((".okta.com", ".oktapreview.com", ".okta-emea.com")):
        return OKTA
    if "/realms/" in path:
        return KEYCLOAK
    if host == "accounts.google.com":
        return GOOGLE
    return None


def _entra_version(issuer: object) -> str | None:
    if provider_of(issuer) is not ENTRA:
        return None
    if "//sts.windows.net/" in str(issuer).lower():
        return "1.0"
    return "2.0" if str(issuer).rstrip("/").endswith("/v2.0") else None


def _okta_org_server(issuer: object) -> bool:
    return provider_of(issuer) is OKTA and "/oauth2/" not in str(issuer)


def _audiences(claims: Mapping[str, Any]) -> list[str]:
    aud = claims.get("aud")
    return [aud] if isinstance(aud, str) else [a for a in aud if isinstance(a, str)] if isinstance(aud, list) else []


def _graph_token(header: Mapping[str, Any], claims: Mapping[str, Any]) -> bool:
    """Microsoft Graph's tokens: for Graph (aud), or with the `nonce` in the header that Graph
    alone knows how to undo before the signature verifies."""
    audiences = _audiences(claims)
    return (
        _GRAPH in audiences
        or "https://graph.microsoft.com" in audiences
        or ("nonce" in header and provider_of(claims.get("iss")) is ENTRA)
    )


_GRAPH_ADVICE = (
    "; a token for Microsoft Graph (no one but Graph can verify it): the client asked for Graph's scopes "
    "(User.Read, ...); it must ask for this API's scope (api://<app>/.default or api://<app>/<scope>)"
)


def _id_token(claims: Mapping[str, Any]) -> bool:
    """An OpenID Connect ID token: it names the client, not an API (Cognito says so in token_use)."""
    return claims.get("token_use") == "id" or (
        "scope" not in claims and "scp" not in claims and any(c in claims for c in ("nonce", "at_hash", "c_hash"))
    )


_ID_TOKEN_ADVICE = (
    "; an ID token, not an access token: it tells the client who signed in, and is for no API; the client "
    "must send the access token it got with it"
)


def signature_advice(header: Mapping[str, Any], claims: Mapping[str, Any], *, key_known: bool) -> str:
    """Why a token's signature does not verify, from its unverified header and claims, when a
    provider explains it (for the log line only: nothing unverified is trusted)."""
    if _graph_token(header, claims):
        return _GRAPH_ADVICE
    if not key_known and _okta_org_server(claims.get("iss")):
        return (
            "; a token from Okta's org authorization server, signed by its own keys: have the client use a "
            "custom authorization server (issuer https://<org>.okta.com/oauth2/default)"
        )
    return ""


def issuer_advice(expected: str, found: object, claims: Mapping[str, Any]) -> str:
    """Why a token from `found` is not from `expected`, in a provider's words ("" if nothing)."""
    if _graph_token({}, claims):
        return _GRAPH_ADVICE  # its version is Graph's choice, not a setting of this API's
    if provider_of(expected) is ENTRA and provider_of(found) is ENTRA:
        want, got = _entra_version(expected), _entra_version(found) or claims.get("ver")
        if want and got and want != got:
            setting = 2 if want == "2.0" else "1 (or null)"
            return (
                f"; a v{got} token, and this resource expects v{want} tokens: set accessTokenAcceptedVersion "
                f"to {setting} in the app registration's manifest, or accept both issuers (docs/identity-providers.md)"
            )
        tenant = claims.get("tid")
        if isinstance(tenant, str) and tenant not in expected:
            return (
                f"; a token of tenant {tenant}: for a multi-tenant app, list the tenants you accept "
                "(TenantIssuers, docs/identity-providers.md)"
            )
    if _okta_org_server(found):
        return (
            "; a token from Okta's org authorization server, which issues tokens only for Okta's own APIs: "
            "have the client use a custom authorization server (issuer https://<org>.okta.com/oauth2/default)"
        )
    return ""


_KEYCLOAK_AUDIENCE = (
    "; Keycloak names a resource in aud only through an Audience mapper: Client scopes > (the scope) > "
    "Mappers > By configuration > Audience, Included Custom Audience = this resource (or resource "
    "indicators in Keycloak 26+)"
)


def audience_advice(claims: Mapping[str, Any], accepted: Iterable[str]) -> str:
    """Why a verified token's `aud` does not name this resource, in its provider's words."""
    issuer, audiences = claims.get("iss"), _audiences(claims)
    if _id_token(claims):
        return _ID_TOKEN_ADVICE
    provider = provider_of(issuer)
    scopes = claims.get("scope")
    if isinstance(scopes, str) and audiences and set(audiences) <= set(scopes.split()):
        return (
            "; its audience is its scopes: the client asked without `resource` (RFC 8707), which the MCP client "
            "must send"
        )
    if provider is ENTRA:
        if _graph_token({}, claims):
            return _GRAPH_ADVICE
        ids = [a for a in audiences if _GUID.fullmatch(a)]
        uris = [a for a in audiences if a.startswith("api://")]
        if ids and not any(_GUID.fullmatch(a) for a in accepted):
            return (
                f"; Entra puts the app's client ID ({ids[0]}) in aud of v2.0 tokens, the Application ID URI in "
                "v1.0 ones: accept the client ID as audience (audience=, or check --audience)"
            )
        if uris and not any(a.startswith("api://") for a in accepted):
            return (
                f"; Entra puts the Application ID URI ({uris[0]}) in aud of v1.0 tokens: accept it as audience too, "
                "or set accessTokenAcceptedVersion to 2 for the client ID"
            )
    if provider is KEYCLOAK:
        return _KEYCLOAK_AUDIENCE
    if provider is AUTH0:
        if any(a.endswith("/userinfo") for a in audiences):
            return (
                "; the client asked Auth0 for no API (only /userinfo): it must ask with audience = the API's "
                "Identifier (or set the tenant's Default Audience)"
            )
        return "; the API's Identifier in Auth0 must be this resource (or pass it as audience=)"
    if _okta_org_server(issuer):
        return (
            "; Okta's org authorization server issues tokens only for Okta's own APIs: use a custom authorization "
            "server"
        )
    if provider is OKTA:
        return "; the audience of an Okta custom authorization server is its Audience setting: make it this resource"
    if provider is GOOGLE:
        return (
            "; a Google ID token names a client, not an API, and Google's access tokens are opaque: check them "
            "with GoogleTokenInfo (docs/identity-providers.md)"
        )
    return ""


def missing_claims_advice(claims: Mapping[str, Any], missing: Iterable[str]) -> str:
    """Why a verified token lacks a claim that is required, in its provider's words."""
    if "aud" in missing and _id_token(claims):
        return _ID_TOKEN_ADVICE
    if "aud" in missing and provider_of(claims.get("iss")) is KEYCLOAK:
        return _KEYCLOAK_AUDIENCE
    if "aud" in missing and provider_of(claims.get("iss")) is COGNITO and claims.get("token_use") == "access":
        return (
            "; Cognito access tokens carry no aud: check client_id and token_use instead "
            "(JWTValidator(audience=False, allowed_clients=[...], required_claims={'token_use': 'access'}), "
            "docs/identity-providers.md)"
        )
    return ""


def encrypted_advice(header: Mapping[str, Any], issuer: str | None) -> str:
    """An encrypted token (JWE) arrived where a signed one was expected."""
    if provider_of(header.get("iss")) is AUTH0 or provider_of(issuer) is AUTH0:
        return (
            "; Auth0 issues an encrypted token when the client asks for no audience: have it ask with "
            "audience = the API's Identifier (or set the tenant's Default Audience)"
        )
    return "; the authorization server encrypted the token for someone else: have the client ask for this resource"
