"""The provider presets: the Entra preset run against the Entra-shaped oidc-provider (single
tenant by discovery; multi-tenant with its allow-list), the others checked for what their
providers document (not reachable from here: Google, GitHub, Okta, Auth0, Keycloak, Cognito)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx2
import pytest

from mcp_auth_middleware.broker import providers
from mcp_auth_middleware.broker.authorization_server import Broker
from mcp_auth_middleware.broker.clients import BrokerClient
from mcp_auth_middleware.broker.providers import Provider

from .conftest import SECRET, BrokerBrowser, EntraLike, authorize_url, broker_issuer, pkce, through_the_provider


async def sign_in(provider: EntraLike, upstream: Provider, database: Path) -> tuple[httpx2.Response, Broker, str]:
    """A sign-in through a broker in front of `upstream`: the broker's answer to the callback."""
    issuer = broker_issuer(provider)
    origin = issuer.removesuffix("/oauth")
    broker = Broker.of(issuer, upstream, [f"{origin}/mcp"], [SECRET], storage=str(database),
                       clients=(BrokerClient.preregistered("cli", ["http://127.0.0.1/callback"]),))  # fmt: skip
    http = httpx2.AsyncClient(transport=httpx2.ASGITransport(app=broker.app), base_url=origin)
    browser = BrokerBrowser(http, issuer, provider.origin)
    _, challenge = pkce()
    to_provider = await browser.consent(await browser.get(authorize_url(issuer, "cli", challenge)))
    location = to_provider.headers["location"]
    callback = await through_the_provider(location, f"{issuer}/callback")
    answer = await browser.get(f"{issuer}/callback?{urlencode(callback)}")
    await http.aclose()
    return answer, broker, location


def entra_multi_tenant(provider: EntraLike, allowed: list[str]) -> Provider:
    return providers.entra(provider.client_id, provider.client_secret, tenant="organizations",
                           allowed_tenants=allowed, authority=provider.origin, allow_http=True)  # fmt: skip


async def test_entra_single_tenant_by_discovery(entra_like: EntraLike, tmp_path: Path) -> None:
    upstream = providers.entra(entra_like.client_id, entra_like.client_secret, tenant=entra_like.tenant,
                               authority=entra_like.origin, allow_http=True)  # fmt: skip
    answer, broker, location = await sign_in(entra_like, upstream, tmp_path / "b.db")
    await broker.aclose()
    assert answer.status_code == 303 and "code=" in answer.headers["location"], answer.text
    sent = dict(parse_qsl(urlsplit(location).query))
    assert location.startswith(f"{entra_like.origin}/{entra_like.tenant}/oauth2/v2.0/authorize?")
    assert "resource" not in sent  # Entra v2 refuses it (AADSTS9010010); the provider here too
    assert set(sent["scope"].split()) == {"openid", "profile", "email", "offline_access"}


async def test_entra_multi_tenant_signs_in_an_allowed_tenants_user_as_their_oid(
    entra_like: EntraLike, tmp_path: Path
) -> None:
    upstream = entra_multi_tenant(entra_like, [entra_like.tenant])
    answer, broker, location = await sign_in(entra_like, upstream, tmp_path / "b.db")
    assert location.startswith(f"{entra_like.origin}/organizations/oauth2/v2.0/authorize?")
    code = dict(parse_qsl(urlsplit(answer.headers["location"]).query))["code"]
    record = await broker.records.get(f"broker:code:{hashlib.sha256(code.encode()).hexdigest()}")
    await broker.aclose()
    assert record is not None and record["sub"] == "oid-alice"  # oid: the same user across the tenant's apps


async def test_entra_multi_tenant_refuses_a_tenant_not_allowed(entra_like: EntraLike, tmp_path: Path) -> None:
    upstream = entra_multi_tenant(entra_like, ["another-tenant"])
    answer, broker, _ = await sign_in(entra_like, upstream, tmp_path / "b.db")
    await broker.aclose()
    assert answer.status_code == 400 and "The sign-in did not complete" in answer.text
    assert "location" not in answer.headers


def test_entra_multi_tenant_needs_its_allow_list() -> None:
    with pytest.raises(ValueError, match="allowed_tenants"):
        providers.entra("id", "secret", tenant="organizations")


@pytest.mark.parametrize(
    ("claims", "accepted"),
    [
        ({"tid": "t1", "iss": "https://login.microsoftonline.com/t1/v2.0"}, True),
        ({"tid": "t2", "iss": "https://login.microsoftonline.com/t2/v2.0"}, False),  # not allowed
        ({"tid": "t1", "iss": "https://login.microsoftonline.com/t2/v2.0"}, False),  # tid and iss differ
        ({"tid": "t1", "iss": "https://evil.example/t1/v2.0"}, False),
        ({"iss": "https://login.microsoftonline.com/t1/v2.0"}, True),  # the callback's iss (RFC 9207)
        ({"iss": "https://login.microsoftonline.com/t2/v2.0"}, False),
        ({"iss": "https://login.microsoftonline.com/t1/x/v2.0"}, False),
    ],
)
def test_entra_multi_tenant_issuer_check(claims: dict[str, Any], accepted: bool) -> None:
    upstream = providers.entra("id", "secret", tenant="common", allowed_tenants=["t1"])
    assert upstream.issuer_check is not None and upstream.issuer_check(claims) is accepted


def test_entra_api_scopes_take_the_place_of_resource() -> None:
    upstream = providers.entra("id", "secret", tenant="t1", api_scopes=["api://notes-api/.default"])
    assert upstream.issuer == "https://login.microsoftonline.com/t1/v2.0"
    assert "api://notes-api/.default" in upstream.scopes and upstream.subject_claim == "oid"


def test_google_asks_for_offline_access() -> None:
    upstream = providers.google("id.apps.googleusercontent.com", "secret")
    assert upstream.issuer == "https://accounts.google.com"
    assert upstream.parameters == {"access_type": "offline", "prompt": "consent"}


def test_github_is_not_openid_connect() -> None:
    upstream = providers.github("Iv1.abc", "secret")
    assert upstream.identity == "userinfo" and upstream.subject_claim == "id" and upstream.issuer is None
    assert upstream.metadata is not None and upstream.metadata["userinfo_endpoint"] == "https://api.github.com/user"


@pytest.mark.parametrize(
    ("upstream", "issuer"),
    [
        (providers.okta("acme.okta.com", "id", "s"), "https://acme.okta.com/oauth2/default"),
        (providers.okta("acme.okta.com", "id", "s", authorization_server="aus1"), "https://acme.okta.com/oauth2/aus1"),
        (providers.auth0("acme.eu.auth0.com", "id", "s"), "https://acme.eu.auth0.com/"),
        (providers.keycloak("https://sso.acme.com/", "mcp", "id", "s"), "https://sso.acme.com/realms/mcp"),
        (providers.cognito("eu-west-1", "eu-west-1_AbC", "id", "s"), "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC"),
    ],
)  # fmt: skip
def test_the_discovered_presets_name_their_issuer(upstream: Provider, issuer: str) -> None:
    assert upstream.issuer == issuer


def test_auth0_sends_the_audience() -> None:
    assert providers.auth0("a.auth0.com", "id", "s", audience="https://notes-api").parameters == {
        "audience": "https://notes-api"
    }


def test_our_scopes_map_to_the_providers() -> None:
    upstream = providers.oidc("https://idp.example", "id", "s", scope_map={"notes:write": ("Notes.ReadWrite",)})
    assert upstream.scopes_for(["mcp"]) == ("openid", "profile", "email")
    assert upstream.scopes_for(["mcp", "notes:write"]) == ("openid", "profile", "email", "Notes.ReadWrite")


@pytest.mark.parametrize(
    "options", [{"client_id": "", "client_secret": "s", "issuer": "x"}, {"client_id": "i", "client_secret": "s"}]
)
def test_a_provider_without_what_it_needs_is_refused(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"client_id|issuer"):
        Provider(**options)


async def test_a_provider_without_openid_connect_is_read_from_its_user_endpoint(
    entra_like: EntraLike, tmp_path: Path
) -> None:
    """GitHub's way (no ID token to verify): the user from the user endpoint, called with the fresh
    access token; here oidc-provider's userinfo stands in for `GET /user`."""
    upstream = Provider(entra_like.client_id, entra_like.client_secret, issuer=entra_like.issuer,
                        identity="userinfo", subject_claim="email", allow_http=True)  # fmt: skip
    answer, broker, _ = await sign_in(entra_like, upstream, tmp_path / "b.db")
    code = dict(parse_qsl(urlsplit(answer.headers["location"]).query))["code"]
    record = await broker.records.get(f"broker:code:{hashlib.sha256(code.encode()).hexdigest()}")
    await broker.aclose()
    assert record is not None and record["sub"] == "alice@example.com"


async def test_a_user_endpoint_that_names_nobody_is_a_clear_page(entra_like: EntraLike, tmp_path: Path) -> None:
    upstream = Provider(entra_like.client_id, entra_like.client_secret, issuer=entra_like.issuer,
                        identity="userinfo", subject_claim="login", allow_http=True)  # fmt: skip
    answer, broker, _ = await sign_in(entra_like, upstream, tmp_path / "b.db")
    await broker.aclose()
    assert answer.status_code == 400 and "The sign-in did not complete" in answer.text


def test_one_string_is_one_resource_or_secret() -> None:
    from mcp_auth_middleware.broker import BrokerSettings

    settings = BrokerSettings("https://b.example/oauth", providers.google("i", "s"), "https://b.example/mcp", "x" * 40)  # type: ignore[arg-type]
    assert settings.resources == ("https://b.example/mcp",) and settings.secrets == ("x" * 40,)
