"""The provider behind the broker (`Provider`), and presets for the common ones.

A preset knows a provider's endpoints, what it needs to issue a refresh token, how it names the
user and which issuers it signs with; the operator gives the client registered there (its id and
secret) and, where the provider has them, the API scopes. What to set on the provider's side is
in docs/broker.md, per preset. Only `oidc` and the Entra preset's shape were run against real
implementations here (node `oidc-provider`, Glewlwyd); the others follow their providers'
published documents."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from ..discovery import discover_authorization_server
from .upstream import IssuerCheck, Upstream

__all__ = ["Provider", "auth0", "cognito", "entra", "github", "google", "keycloak", "oidc", "okta"]

_OIDC_SCOPES = ("openid", "profile", "email")


@dataclass(frozen=True)
class Provider:
    """One provider and the broker's confidential client there.

    `issuer` is discovered (OpenID Connect Discovery, RFC 8414); `metadata` gives endpoints
    instead (or over what discovery found). `scopes` are always asked for; `scope_map` adds the
    provider's scopes for each of ours a client asks for (`{"notes:write": ("Notes.ReadWrite",)}`).
    """

    client_id: str
    client_secret: str = field(repr=False)
    issuer: str | None = None
    metadata: Mapping[str, Any] | None = None
    scopes: tuple[str, ...] = _OIDC_SCOPES
    parameters: Mapping[str, str] = field(default_factory=dict)
    scope_map: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    identity: Literal["id_token", "userinfo"] = "id_token"
    subject_claim: str = "sub"
    issuer_check: IssuerCheck | None = field(default=None, repr=False)
    name: str = "your identity provider"
    allow_http: bool = False  # a provider on loopback http, for tests

    def __post_init__(self) -> None:
        if not self.client_id or not self.client_secret:
            raise ValueError("the provider needs the broker's client_id and client_secret registered there")
        if self.issuer is None and self.metadata is None:
            raise ValueError("give the provider's issuer (discovered) or its metadata (endpoints)")

    def scopes_for(self, ours: Iterable[str]) -> tuple[str, ...]:
        """What to ask the provider for when a client asks for `ours`."""
        wanted = list(self.scopes)
        for scope in ours:
            wanted += [s for s in self.scope_map.get(scope, ()) if s not in wanted]
        return tuple(wanted)

    async def connect(self) -> Upstream:
        options: dict[str, Any] = {
            "scopes": self.scopes,
            "parameters": self.parameters,
            "allow_http": self.allow_http,
            "identity": self.identity,
            "subject_claim": self.subject_claim,
            "issuer_check": self.issuer_check,
        }
        metadata = dict(self.metadata or {})  # given endpoints over the discovered ones
        if self.issuer is not None:
            metadata = await discover_authorization_server(self.issuer, allow_http=self.allow_http) | metadata
        return Upstream(metadata, self.client_id, self.client_secret, **options)


def oidc(issuer: str, client_id: str, client_secret: str, **options: Any) -> Provider:
    """Any OpenID Connect provider, by discovery (Glewlwyd, Authentik, Zitadel, Ping, ...)."""
    return Provider(client_id, client_secret, issuer=issuer, **options)


def entra(
    client_id: str,
    client_secret: str,
    *,
    tenant: str,
    allowed_tenants: Iterable[str] = (),
    api_scopes: Iterable[str] = (),
    authority: str = "https://login.microsoftonline.com",
    **options: Any,
) -> Provider:
    """Microsoft Entra ID, v2 endpoints. `tenant` is a tenant id (single tenant, discovered), or
    `organizations`/`common` (multi-tenant: `allowed_tenants` is then required, the tenants whose
    users may sign in, each token's `iss` checked against its own `tid`). `api_scopes` are the
    `api://<app id>/.default`-style scopes Entra takes instead of RFC 8707 `resource`, which v2
    refuses (AADSTS9010010); `User.Read` and the like for Microsoft Graph. The user is `oid`."""
    base = authority.rstrip("/")
    scopes = (*_OIDC_SCOPES, "offline_access", *api_scopes)
    common = dict(subject_claim="oid", name="Microsoft", scopes=scopes) | options
    if tenant not in ("organizations", "common", "consumers"):
        return Provider(client_id, client_secret, issuer=f"{base}/{tenant}/v2.0", **common)
    allowed = frozenset(allowed_tenants)
    if not allowed:
        raise ValueError("a multi-tenant Entra app needs allowed_tenants: the tenant ids whose users may sign in")

    def issuer_check(claims: Mapping[str, Any]) -> bool:
        """`iss` names an allowed tenant (the callback's RFC 9207 `iss`, or an ID token's), and
        an ID token's `tid` is that tenant."""
        iss = claims.get("iss")
        tenant = iss.removeprefix(f"{base}/").removesuffix("/v2.0") if isinstance(iss, str) else None
        return tenant in allowed and iss == f"{base}/{tenant}/v2.0" and claims.get("tid", tenant) == tenant

    metadata = {
        "issuer": f"{base}/{{tenantid}}/v2.0",
        "authorization_endpoint": f"{base}/{tenant}/oauth2/v2.0/authorize",
        "token_endpoint": f"{base}/{tenant}/oauth2/v2.0/token",
        "jwks_uri": f"{base}/{tenant}/discovery/v2.0/keys",
    }
    return Provider(client_id, client_secret, metadata=metadata, issuer_check=issuer_check, **common)


def google(client_id: str, client_secret: str, **options: Any) -> Provider:
    """Google: `access_type=offline` and `prompt=consent`, or Google gives no refresh token."""
    parameters = {"access_type": "offline", "prompt": "consent"}
    return Provider(
        client_id, client_secret, issuer="https://accounts.google.com", parameters=parameters, name="Google", **options
    )


def github(client_id: str, client_secret: str, **options: Any) -> Provider:
    """GitHub (an OAuth App or a GitHub App's user authorization): not OpenID Connect, so the user
    is read from `GET /user` (`id`, which never changes; a login can be renamed)."""
    metadata = {
        "issuer": "https://github.com/login/oauth",
        "authorization_endpoint": "https://github.com/login/oauth/authorize",
        "token_endpoint": "https://github.com/login/oauth/access_token",
        "userinfo_endpoint": "https://api.github.com/user",
    }
    defaults: dict[str, Any] = dict(scopes=("read:user",), identity="userinfo", subject_claim="id", name="GitHub")
    return Provider(client_id, client_secret, metadata=metadata, **(defaults | options))


def okta(
    domain: str, client_id: str, client_secret: str, *, authorization_server: str = "default", **options: Any
) -> Provider:
    """Okta, through a custom authorization server (`default` unless named): the org server's
    tokens are for Okta's own APIs. `offline_access` must be allowed in its access policy."""
    scopes = (*_OIDC_SCOPES, "offline_access")
    issuer = f"https://{domain}/oauth2/{authorization_server}"
    return Provider(client_id, client_secret, issuer=issuer, **(dict(scopes=scopes, name="Okta") | options))


def auth0(domain: str, client_id: str, client_secret: str, *, audience: str | None = None, **options: Any) -> Provider:
    """Auth0: `audience` names the API whose access token the broker keeps (without it Auth0
    issues an opaque token for its userinfo only)."""
    parameters = {"audience": audience} if audience else {}
    scopes = (*_OIDC_SCOPES, "offline_access")
    defaults: dict[str, Any] = dict(scopes=scopes, parameters=parameters, name="Auth0")
    return Provider(client_id, client_secret, issuer=f"https://{domain}/", **(defaults | options))


def keycloak(base_url: str, realm: str, client_id: str, client_secret: str, **options: Any) -> Provider:
    """Keycloak: a confidential client in `realm` with the standard flow on."""
    issuer = f"{base_url.rstrip('/')}/realms/{realm}"
    return Provider(client_id, client_secret, issuer=issuer, **(dict(name="Keycloak") | options))


def cognito(region: str, user_pool_id: str, client_id: str, client_secret: str, **options: Any) -> Provider:
    """Amazon Cognito: an app client with a secret, the authorization code grant and the
    `openid` scope; the hosted UI's domain comes from the pool's discovery document."""
    issuer = f"https://cognito-idp.{region}.amazonaws.com/{user_pool_id}"
    return Provider(client_id, client_secret, issuer=issuer, **(dict(name="Amazon Cognito") | options))
