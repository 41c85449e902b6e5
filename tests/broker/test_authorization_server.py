"""The broker as MCP clients and their users meet it, with the Entra-like provider (node
oidc-provider) behind it and the middleware in front of the MCP server: a sign-in, and every
attack on it the issue names (redirect URIs, codes, PKCE, state, consent, resources, refresh
tokens, the provider failing)."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx2
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from mcp_auth_middleware import MCPAuthMiddleware
from mcp_auth_middleware.broker.authorization_server import Broker
from mcp_auth_middleware.broker.clients import BrokerClient, RegistrationPolicy
from mcp_auth_middleware.broker.providers import oidc
from mcp_auth_middleware.broker.upstream import ProviderError
from mcp_auth_middleware.testing import free_port

from .conftest import SECRET, BrokerBrowser, EntraLike, authorize_url, broker_issuer, pkce

CLIENT = "notes-cli"
REDIRECT = "http://127.0.0.1:5555/callback"


@dataclass
class Setup:
    broker: Broker
    http: httpx2.AsyncClient  # the broker and the MCP servers it serves, in process
    issuer: str
    resource: str  # resource A
    other: str  # resource B
    database: Path
    provider: EntraLike

    def browser(self) -> BrokerBrowser:
        return BrokerBrowser(self.http, self.issuer, self.provider.issuer)

    async def token(self, **form: str) -> httpx2.Response:
        return await self.http.post(f"{self.issuer}/token", data=form)

    async def code(self, browser: BrokerBrowser | None = None, **params: str) -> tuple[str, str]:
        verifier, challenge = pkce()
        answer = await (browser or self.browser()).sign_in(authorize_url(self.issuer, CLIENT, challenge, **params))
        assert "code" in answer, answer
        return answer["code"], verifier

    async def tokens(self, **params: str) -> dict[str, Any]:
        code, verifier = await self.code(**params)
        response = await self.token(
            grant_type="authorization_code", code=code, code_verifier=verifier, client_id=CLIENT, redirect_uri=REDIRECT
        )
        assert response.status_code == 200, response.text
        answer: dict[str, Any] = response.json()
        return answer

    def stored(self, prefix: str) -> int:
        with sqlite3.connect(self.database) as db:
            (count,) = db.execute("SELECT count(*) FROM records WHERE key LIKE ?", (f"{prefix}%",)).fetchone()
        return int(count)


def whoami(request: Request) -> JSONResponse:
    auth = request.state.auth
    return JSONResponse({"sub": auth.sub, "client_id": auth.client_id, "scopes": sorted(auth.scopes)})


def build(provider: EntraLike, database: Path, **options: Any) -> tuple[Broker, Any, str, str]:
    issuer = broker_issuer(provider)
    origin = issuer.removesuffix("/oauth")
    resource, other = f"{origin}/mcp", f"{origin}/other"
    upstream = options.pop("upstream", None) or oidc(
        provider.issuer, provider.client_id, provider.client_secret, allow_http=True
    )
    broker = Broker.of(
        issuer,
        upstream,
        [resource, other],
        [SECRET],
        storage=str(database),
        scopes_supported=options.pop("scopes_supported", ["mcp", "notes:delete"]),
        clients=(
            BrokerClient.preregistered(CLIENT, ["http://127.0.0.1/callback"], client_name="Notes CLI"),
            *options.pop("clients", ()),
        ),
        **options,
    )
    inner = Starlette(routes=[Route("/mcp", whoami, methods=["GET", "POST"]), Route("/other", whoami)])
    a = MCPAuthMiddleware(inner, resource=resource, broker=broker, required_scopes=["mcp"])
    b = MCPAuthMiddleware(inner, resource=other, broker=broker, required_scopes=["mcp"])

    async def app(scope: Any, receive: Any, send: Any) -> None:  # A at /mcp (and the broker), B at /other
        await (b if scope.get("path") == "/other" else a)(scope, receive, send)

    return broker, app, resource, other


@pytest.fixture
async def setup(entra_like: EntraLike, tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Setup]:
    options = getattr(request, "param", {})
    database = tmp_path / "broker.db"
    broker, app, resource, other = build(entra_like, database, **options)
    origin = resource.removesuffix("/mcp")
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url=origin, timeout=20) as http:
        yield Setup(broker, http, broker.issuer, resource, other, database, entra_like)
    await broker.aclose()


def client_answer(response: httpx2.Response) -> dict[str, str]:
    assert response.status_code == 303, response.text[:300]
    location = response.headers["location"]
    assert location.startswith(REDIRECT), location
    return dict(parse_qsl(urlsplit(location).query))


# -- a sign-in -------------------------------------------------------------------------------------


async def test_metadata_names_every_endpoint_under_the_issuer(setup: Setup) -> None:
    """RFC 8414 §3: at the path-inserted well-known URL, `issuer` exactly the broker's."""
    document = (await setup.http.get("/.well-known/oauth-authorization-server/oauth")).json()
    assert document["issuer"] == setup.issuer
    for name in ("authorization_endpoint", "token_endpoint", "registration_endpoint", "revocation_endpoint"):
        assert document[name].startswith(setup.issuer + "/")
    assert document["code_challenge_methods_supported"] == ["S256"]
    assert document["authorization_response_iss_parameter_supported"] is True
    assert document["client_id_metadata_document_supported"] is True
    resource_metadata = (await setup.http.get("/.well-known/oauth-protected-resource/mcp")).json()
    assert resource_metadata["authorization_servers"] == [setup.issuer]  # named by one option
    keys = (await setup.http.get(document["jwks_uri"].removeprefix(setup.issuer.removesuffix("/oauth")))).json()
    assert [k["alg"] for k in keys["keys"]] == ["ES256"] and all("d" not in k for k in keys["keys"])


async def test_a_sign_in_through_consent_and_the_provider_calls_the_mcp_server(setup: Setup) -> None:
    browser = setup.browser()
    verifier, challenge = pkce()
    answer = await browser.sign_in(authorize_url(setup.issuer, CLIENT, challenge))
    assert answer["state"] == "client-state" and answer["iss"] == setup.issuer  # RFC 9207
    assert "Notes CLI" in browser.pages[0] and "127.0.0.1" in browser.pages[0]
    response = await setup.token(
        grant_type="authorization_code", code=answer["code"], code_verifier=verifier, client_id=CLIENT,
        redirect_uri=REDIRECT,
    )  # fmt: skip
    tokens = response.json()
    assert response.headers["cache-control"] == "no-store"
    assert tokens["token_type"] == "Bearer" and tokens["scope"] == "mcp" and tokens["expires_in"] == 300
    me = await setup.http.get("/mcp", headers={"authorization": f"Bearer {tokens['access_token']}"})
    assert me.json() == {"sub": "alice", "client_id": CLIENT, "scopes": ["mcp"]}
    # The provider's tokens never reach the client, and are stored sealed.
    assert setup.stored("provider:") == 1
    with sqlite3.connect(setup.database) as db:
        (sealed,) = db.execute("SELECT value FROM records WHERE key LIKE 'provider:%'").fetchone()
    provider_token = await setup.broker.provider_token(await _auth(setup, tokens["access_token"]))
    assert provider_token not in str(tokens) and provider_token not in sealed


async def _auth(setup: Setup, token: str) -> Any:
    return await setup.broker.validator().for_resource(setup.resource).validate(token)


async def test_the_same_browser_is_not_asked_again_for_what_it_approved(setup: Setup) -> None:
    browser = setup.browser()
    await setup.code(browser)
    await setup.code(browser)
    assert len(browser.pages) == 1
    await setup.code(browser, scope="mcp notes:delete")  # more than approved: asked again
    assert len(browser.pages) == 2 and "notes:delete" in browser.pages[1]


async def test_refresh_rotates_and_keeps_the_audience(setup: Setup) -> None:
    tokens = await setup.tokens()
    response = await setup.token(grant_type="refresh_token", refresh_token=tokens["refresh_token"], client_id=CLIENT)
    fresh = response.json()
    assert response.status_code == 200 and fresh["refresh_token"] != tokens["refresh_token"]
    auth = await _auth(setup, fresh["access_token"])
    assert auth.audience == (setup.resource,) and auth.sub == "alice"


# -- attacks: redirect URIs -----------------------------------------------------------------------

LOOK_ALIKES = [
    "http://127.0.0.1:5555/callback/../evil",
    "http://127.0.0.1:5555/callbackx",
    "http://127.0.0.1:5555/callback?next=https://evil.example",
    "http://127.0.0.1.evil.example:5555/callback",
    "http://evil.example@127.0.0.1:5555/callback",
    "https://127.0.0.1:5555/callback",
    "http://[::1]:5555/callback",
    "http://localhost:5555/callback",
    "http://127.0.0.1:5555/callback#x",
    "http://127.0.0.1:99999/callback",
    "https://evil.example/callback",
    "javascript:alert(1)//127.0.0.1/callback",
]


@pytest.mark.parametrize("redirect_uri", LOOK_ALIKES)
async def test_an_unregistered_or_look_alike_redirect_uri_gets_a_page_not_a_redirect(
    setup: Setup, redirect_uri: str
) -> None:
    _, challenge = pkce()
    response = await setup.browser().get(authorize_url(setup.issuer, CLIENT, challenge, redirect_uri=redirect_uri))
    assert response.status_code == 400 and "location" not in response.headers
    assert "redirect URI is not registered" in response.text
    assert response.headers["content-security-policy"].startswith("default-src 'none'")


@pytest.mark.parametrize("port", ["", ":1", ":5555", ":65535"])
async def test_a_loopback_redirect_uri_matches_on_any_port(setup: Setup, port: str) -> None:
    """RFC 8252 §7.3: the port is the one free when the native client started."""
    _, challenge = pkce()
    url = authorize_url(setup.issuer, CLIENT, challenge, redirect_uri=f"http://127.0.0.1{port}/callback")
    assert (await setup.browser().get(url)).status_code == 200  # the consent page


async def test_an_unknown_client_gets_a_page(setup: Setup) -> None:
    _, challenge = pkce()
    response = await setup.browser().get(authorize_url(setup.issuer, "nobody", challenge))
    assert response.status_code == 400 and "location" not in response.headers


# -- attacks: the authorization request and PKCE -------------------------------------------------


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"code_challenge": None}, "invalid_request"),
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"code_challenge_method": None}, "invalid_request"),
        ({"code_challenge": "short"}, "invalid_request"),
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"scope": "mcp admin"}, "invalid_scope"),
        ({"resource": "https://elsewhere.example/mcp"}, "invalid_target"),
    ],
)
async def test_a_bad_authorization_request_is_told_to_the_client(
    setup: Setup, params: dict[str, str | None], error: str
) -> None:
    _, challenge = pkce()
    answer = client_answer(await setup.browser().get(authorize_url(setup.issuer, CLIENT, challenge, **params)))  # type: ignore[arg-type]
    assert answer["error"] == error and answer["state"] == "client-state" and answer["iss"] == setup.issuer
    assert setup.stored("broker:sign-in:") == 0


async def test_a_parameter_given_twice_is_refused(setup: Setup) -> None:
    _, challenge = pkce()
    url = authorize_url(setup.issuer, CLIENT, challenge) + "&" + urlencode({"redirect_uri": "https://evil.example/cb"})
    response = await setup.browser().get(url)
    assert response.status_code == 400 and "location" not in response.headers


async def test_a_wrong_or_missing_verifier_is_refused_and_spends_the_code(setup: Setup) -> None:
    code, verifier = await setup.code()
    for wrong in ("", "x" * 43, verifier[:-1] + ("A" if verifier[-1] != "A" else "B")):
        response = await setup.token(
            grant_type="authorization_code", code=code, code_verifier=wrong, client_id=CLIENT, redirect_uri=REDIRECT
        )
        assert response.status_code == 400 and response.json()["error"] == "invalid_grant"
    response = await setup.token(
        grant_type="authorization_code", code=code, code_verifier=verifier, client_id=CLIENT, redirect_uri=REDIRECT
    )
    assert response.json()["error"] == "invalid_grant"  # an intercepted code tried once is gone


async def test_a_code_used_twice_revokes_what_it_gave(setup: Setup) -> None:
    code, verifier = await setup.code()
    form = dict(
        grant_type="authorization_code", code=code, code_verifier=verifier, client_id=CLIENT, redirect_uri=REDIRECT
    )
    first = (await setup.token(**form)).json()
    again = await setup.token(**form)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    refresh = await setup.token(grant_type="refresh_token", refresh_token=first["refresh_token"], client_id=CLIENT)
    assert refresh.json()["error"] == "invalid_grant"  # RFC 6749 §4.1.2: revoked with the reuse


async def test_a_code_used_by_another_client_is_refused(setup: Setup) -> None:
    registered = (await setup.http.post(f"{setup.issuer}/register", json={
        "redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none", "client_name": "other"}))  # fmt: skip
    other = registered.json()["client_id"]
    code, verifier = await setup.code()
    response = await setup.token(
        grant_type="authorization_code", code=code, code_verifier=verifier, client_id=other, redirect_uri=REDIRECT
    )
    assert response.json()["error"] == "invalid_grant"
    mine = await setup.token(
        grant_type="authorization_code", code=code, code_verifier=verifier, client_id=CLIENT, redirect_uri=REDIRECT
    )
    assert mine.json()["error"] == "invalid_grant"  # spent by the attempt


async def test_a_code_with_another_redirect_uri_is_refused(setup: Setup) -> None:
    code, verifier = await setup.code()
    response = await setup.token(
        grant_type="authorization_code", code=code, code_verifier=verifier, client_id=CLIENT,
        redirect_uri="http://127.0.0.1:5556/callback",
    )  # fmt: skip
    assert response.json()["error"] == "invalid_grant"


# -- attacks: state, consent, the browser ---------------------------------------------------------


async def _at_the_provider(setup: Setup, browser: BrokerBrowser, **params: str) -> str:
    _, challenge = pkce()
    page = await browser.get(authorize_url(setup.issuer, CLIENT, challenge, **params))
    response = await browser.consent(page)
    assert response.status_code == 303
    return str(response.headers["location"])


async def test_a_callback_without_state_or_with_an_unknown_one_gets_a_page(setup: Setup) -> None:
    browser = setup.browser()
    for query in ("code=abc", "code=abc&state=made-up", "code=abc&state=a&state=b"):
        response = await browser.get(f"{setup.issuer}/callback?{query}")
        assert response.status_code == 400 and "location" not in response.headers


async def test_a_callback_in_another_browser_gets_nothing(setup: Setup) -> None:
    """A link that lands another user on the callback (or an attacker who got the victim's
    code) signs nobody in; the browser that started the sign-in still can."""
    from .conftest import through_the_provider

    mine, theirs = setup.browser(), setup.browser()
    await theirs.get(f"{setup.issuer}/jwks")  # any page: no cookie yet
    location = await _at_the_provider(setup, mine)
    callback = await through_the_provider(location, f"{setup.issuer}/callback")
    query = urlencode(callback)
    for stranger in (theirs, setup.browser()):
        response = await stranger.get(f"{setup.issuer}/callback?{query}")
        assert response.status_code == 403 and "another browser" in response.text
    assert setup.stored("broker:code:") == 0
    answer = client_answer(await mine.get(f"{setup.issuer}/callback?{query}"))
    assert "code" in answer
    replay = await mine.get(f"{setup.issuer}/callback?{query}")
    assert replay.status_code == 400  # the sign-in is used once


@pytest.mark.parametrize(
    "forgery",
    [
        {"csrf": ""},
        {"csrf": "0" * 64},
        {"origin": "https://evil.example"},
        {"origin": "null"},
        {"origin": "", "sec_fetch_site": "cross-site"},
    ],
    ids=["no-csrf", "wrong-csrf", "other-origin", "null-origin", "cross-site"],
)
async def test_a_forged_consent_decides_nothing(setup: Setup, forgery: dict[str, str]) -> None:
    browser = setup.browser()
    _, challenge = pkce()
    page = await browser.get(authorize_url(setup.issuer, CLIENT, challenge))
    response = await browser.consent(page, **forgery)
    assert response.status_code == 403 and "location" not in response.headers
    assert setup.stored("broker:consent:") == 0
    assert (await browser.consent(page)).status_code == 303  # the genuine form still works


async def test_a_consent_form_posted_by_another_browser_decides_nothing(setup: Setup) -> None:
    mine, theirs = setup.browser(), setup.browser()
    _, challenge = pkce()
    page = await mine.get(authorize_url(setup.issuer, CLIENT, challenge))
    await theirs.get(authorize_url(setup.issuer, CLIENT, challenge))  # a cookie of its own
    assert (await theirs.consent(page)).status_code == 403


async def test_a_second_client_does_not_ride_the_first_ones_consent_or_the_provider_session(setup: Setup) -> None:
    """MCP Security Best Practices, Confused Deputy Problem: the user approved client A; client B
    (registered by anyone) sends the same browser to /authorize: the consent page, naming B,
    before anything reaches the provider, whose session would sign the user in silently."""
    browser = setup.browser()
    await setup.code(browser)
    registered = await setup.http.post(f"{setup.issuer}/register", json={
        "redirect_uris": ["http://127.0.0.1/callback"], "token_endpoint_auth_method": "none",
        "client_name": "<img src=x onerror=alert(1)>Evil"})  # fmt: skip
    evil = registered.json()["client_id"]
    _, challenge = pkce()
    page = await browser.get(authorize_url(setup.issuer, evil, challenge))
    assert page.status_code == 200 and "location" not in page.headers
    assert "&lt;img src=x onerror=alert(1)&gt;Evil" in page.text and "<img" not in page.text
    assert page.headers["x-frame-options"] == "DENY" and page.headers.get_list("x-content-type-options") == ["nosniff"]
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    denied = client_answer(await browser.consent(page, decision="deny"))
    assert denied["error"] == "access_denied"


# -- attacks: tokens --------------------------------------------------------------------------------


async def test_a_token_for_resource_a_is_refused_at_resource_b(setup: Setup) -> None:
    tokens = await setup.tokens(resource=setup.resource)
    at_a = await setup.http.get("/mcp", headers={"authorization": f"Bearer {tokens['access_token']}"})
    at_b = await setup.http.get("/other", headers={"authorization": f"Bearer {tokens['access_token']}"})
    assert at_a.status_code == 200
    assert at_b.status_code == 401 and 'error="invalid_token"' in at_b.headers["www-authenticate"]
    widened = await setup.token(
        grant_type="refresh_token", refresh_token=tokens["refresh_token"], client_id=CLIENT, resource=setup.other
    )
    assert widened.json()["error"] == "invalid_target"  # RFC 8707 §2.2: not beyond the grant


async def test_a_token_for_b_is_issued_when_b_was_asked_for(setup: Setup) -> None:
    tokens = await setup.tokens(resource=setup.other)
    at_b = await setup.http.get("/other", headers={"authorization": f"Bearer {tokens['access_token']}"})
    assert at_b.status_code == 200


@pytest.mark.parametrize("setup", [{"refresh_grace": 0}], indirect=True)
async def test_a_refresh_token_replayed_after_rotation_revokes_the_family(setup: Setup) -> None:
    tokens = await setup.tokens()
    rotated = (
        await setup.token(grant_type="refresh_token", refresh_token=tokens["refresh_token"], client_id=CLIENT)
    ).json()
    replay = await setup.token(grant_type="refresh_token", refresh_token=tokens["refresh_token"], client_id=CLIENT)
    assert replay.json()["error"] == "invalid_grant"
    successor = await setup.token(grant_type="refresh_token", refresh_token=rotated["refresh_token"], client_id=CLIENT)
    assert successor.json()["error"] == "invalid_grant"  # RFC 9700 §4.14.2: the whole family
    with pytest.raises(ProviderError):
        await setup.broker.provider_token(await _auth(setup, rotated["access_token"]))


async def test_a_refresh_token_of_another_client_is_refused(setup: Setup) -> None:
    tokens = await setup.tokens()
    registered = await setup.http.post(f"{setup.issuer}/register", json={
        "redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none"})  # fmt: skip
    response = await setup.token(
        grant_type="refresh_token", refresh_token=tokens["refresh_token"], client_id=registered.json()["client_id"]
    )
    assert response.json()["error"] == "invalid_grant"


async def test_revoking_a_refresh_token_ends_the_sign_in(setup: Setup) -> None:
    tokens = await setup.tokens()
    other = await setup.http.post(f"{setup.issuer}/register", json={
        "redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none"})  # fmt: skip
    by_other = await setup.http.post(
        f"{setup.issuer}/revoke", data={"token": tokens["refresh_token"], "client_id": other.json()["client_id"]}
    )
    assert by_other.status_code == 200  # RFC 7009 §2.2, and nothing revoked:
    auth = await _auth(setup, tokens["access_token"])
    assert await setup.broker.provider_token(auth)
    revoked = await setup.http.post(
        f"{setup.issuer}/revoke", data={"token": tokens["refresh_token"], "client_id": CLIENT}
    )
    assert revoked.status_code == 200
    refresh = await setup.token(grant_type="refresh_token", refresh_token=tokens["refresh_token"], client_id=CLIENT)
    assert refresh.json()["error"] == "invalid_grant"
    with pytest.raises(ProviderError):
        await setup.broker.provider_token(auth)
    assert setup.stored("provider:") == 0  # the provider's tokens are forgotten


async def test_revoking_an_access_token_ends_its_family(setup: Setup) -> None:
    tokens = await setup.tokens()
    await setup.http.post(f"{setup.issuer}/revoke", data={"token": tokens["access_token"], "client_id": CLIENT})
    refresh = await setup.token(grant_type="refresh_token", refresh_token=tokens["refresh_token"], client_id=CLIENT)
    assert refresh.json()["error"] == "invalid_grant"


@pytest.mark.parametrize(
    "form",
    [
        {},
        {"grant_type": "password", "client_id": CLIENT},
        {"grant_type": "client_credentials", "client_id": CLIENT},
        {"grant_type": "authorization_code", "client_id": "nobody", "code": "x"},
        {"grant_type": "refresh_token", "client_id": CLIENT, "refresh_token": "no-dot"},
        {"grant_type": "refresh_token", "client_id": CLIENT, "client_secret": "a public client has none"},
    ],
)
async def test_a_bad_token_request_is_a_clear_4xx(setup: Setup, form: dict[str, str]) -> None:
    response = await setup.token(**form)
    assert response.status_code in (400, 401) and response.json()["error"] in (
        "invalid_request", "unsupported_grant_type", "invalid_client", "invalid_grant")  # fmt: skip


async def test_malformed_token_requests_are_refused(setup: Setup) -> None:
    form = {"content-type": "application/x-www-form-urlencoded"}
    cases = [
        {"content": b"grant_type=refresh_token&grant_type=authorization_code", "headers": form},
        {"json": {"grant_type": "authorization_code"}},
        {"content": b"x" * 20000, "headers": form},
        {"data": {"grant_type": "refresh_token"}, "headers": {"authorization": "Basic !!!"}},
    ]  # fmt: skip
    for case in cases:
        response = await setup.http.post(f"{setup.issuer}/token", **case)  # type: ignore[arg-type]
        assert response.status_code in (400, 401), response.text


# -- registration ---------------------------------------------------------------------------------


async def test_registration_keeps_a_confidential_clients_secret_only_hashed(setup: Setup) -> None:
    response = await setup.http.post(
        f"{setup.issuer}/register", json={"redirect_uris": [REDIRECT], "client_name": "svc"}
    )
    info = response.json()
    assert response.status_code == 201 and info["token_endpoint_auth_method"] == "client_secret_basic"
    with sqlite3.connect(setup.database) as db:
        stored = " ".join(v for (v,) in db.execute("SELECT value FROM records WHERE key LIKE 'broker:client:%'"))
    assert info["client_secret"] not in stored


@pytest.mark.parametrize(
    "metadata",
    [
        {"redirect_uris": ["javascript:alert(1)"]},
        {"redirect_uris": ["http://evil.example/cb"]},
        {"redirect_uris": []},
        {"redirect_uris": [REDIRECT], "grant_types": ["client_credentials"]},
        {"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "private_key_jwt"},
        {"redirect_uris": [REDIRECT], "client_name": "x" * 500},
        {"redirect_uris": "http://127.0.0.1/cb"},
    ],
)
async def test_registration_refuses_what_it_cannot_honour(setup: Setup, metadata: dict[str, Any]) -> None:
    response = await setup.http.post(f"{setup.issuer}/register", json=metadata)
    assert response.status_code == 400 and response.json()["error"] in (
        "invalid_redirect_uri",
        "invalid_client_metadata",
    )


@pytest.mark.parametrize(
    ("setup", "redirect", "allowed"),
    [
        ({"registration": RegistrationPolicy("closed")}, REDIRECT, False),
        ({"registration": RegistrationPolicy("loopback")}, REDIRECT, True),
        ({"registration": RegistrationPolicy("loopback")}, "https://app.example/cb", False),
        (
            {"registration": RegistrationPolicy(redirect_hosts=frozenset({"app.example"}))},
            "https://app.example/cb",
            True,
        ),
        (
            {"registration": RegistrationPolicy(redirect_hosts=frozenset({"app.example"}))},
            "https://evil.example/cb",
            False,
        ),
    ],
    indirect=["setup"],
)
async def test_the_registration_policy(setup: Setup, redirect: str, allowed: bool) -> None:
    response = await setup.http.post(f"{setup.issuer}/register", json={"redirect_uris": [redirect]})
    assert (response.status_code == 201) is allowed, response.text


# -- the provider failing ---------------------------------------------------------------------------


async def test_the_user_cancels_at_the_provider(setup: Setup) -> None:
    _, challenge = pkce()
    answer = await setup.browser().sign_in(authorize_url(setup.issuer, CLIENT, challenge), deny_at_provider=True)
    assert answer["error"] == "access_denied" and answer["state"] == "client-state"
    assert setup.stored("provider:") == 0 and setup.stored("broker:code:") == 0


async def test_an_error_in_the_callback_is_a_clear_page(setup: Setup) -> None:
    browser = setup.browser()
    location = await _at_the_provider(setup, browser)
    state = dict(parse_qsl(urlsplit(location).query))["state"]
    query = urlencode({"error": "server_error", "state": state, "iss": setup.provider.issuer})
    response = await browser.get(f"{setup.issuer}/callback?{query}")
    assert response.status_code == 400 and "The sign-in did not complete" in response.text
    assert "<script" not in response.text and setup.stored("provider:") == 0


async def test_a_callback_naming_another_issuer_is_refused(setup: Setup) -> None:
    """RFC 9207 §2.4: a mix-up (the code is another provider's)."""
    browser = setup.browser()
    location = await _at_the_provider(setup, browser)
    state = dict(parse_qsl(urlsplit(location).query))["state"]
    query = urlencode({"code": "x", "state": state, "iss": "https://evil.example"})
    response = await browser.get(f"{setup.issuer}/callback?{query}")
    assert response.status_code == 400 and setup.stored("provider:") == 0


@pytest.mark.parametrize(
    "setup", [{"upstream": oidc(f"http://127.0.0.1:{free_port()}", "broker", "broker-secret", allow_http=True)}],
    indirect=True,
)  # fmt: skip
async def test_the_provider_down_is_a_503_page(setup: Setup) -> None:
    browser = setup.browser()
    _, challenge = pkce()
    page = await browser.get(authorize_url(setup.issuer, CLIENT, challenge))
    response = await browser.consent(page)
    assert response.status_code == 503 and response.headers["retry-after"]
    assert "Sign-in is unavailable" in response.text and setup.stored("provider:") == 0


async def test_the_provider_unreachable_at_the_callback_is_a_503_page(entra_like: EntraLike, tmp_path: Path) -> None:
    """The provider's token endpoint down when its code comes back: a page saying to try again,
    no code for the client, nothing kept."""
    closed = f"http://127.0.0.1:{free_port()}/token"
    upstream = oidc(entra_like.issuer, entra_like.client_id, entra_like.client_secret, allow_http=True,
                    metadata={"token_endpoint": closed})  # fmt: skip
    broker, app, _, _ = build(entra_like, tmp_path / "broker.db", upstream=upstream)
    origin = broker.issuer.removesuffix("/oauth")
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url=origin, timeout=20) as http:
        setup = Setup(
            broker, http, broker.issuer, f"{origin}/mcp", f"{origin}/other", tmp_path / "broker.db", entra_like
        )
        browser = setup.browser()
        location = await _at_the_provider(setup, browser)
        from .conftest import through_the_provider

        callback = await through_the_provider(location, f"{setup.issuer}/callback")
        response = await browser.get(f"{setup.issuer}/callback?{urlencode(callback)}")
        assert response.status_code == 503 and response.headers["retry-after"]
        assert "try again" in response.text.lower() and "location" not in response.headers
        assert setup.stored("provider:") == 0 and setup.stored("broker:code:") == 0
    await broker.aclose()


async def test_a_restart_loses_nothing(entra_like: EntraLike, tmp_path: Path) -> None:
    """One machine, the default storage (SQLite): the broker stops and starts again; its access
    tokens still validate (the keys were kept), the refresh token works, the provider's token
    is still there, the consent is remembered."""
    database = tmp_path / "broker.db"
    broker, app, resource, other = build(entra_like, database)
    origin = resource.removesuffix("/mcp")
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url=origin, timeout=20) as http:
        before = Setup(broker, http, broker.issuer, resource, other, database, entra_like)
        browser = before.browser()
        code, verifier = await before.code(browser)
        tokens = (await before.token(grant_type="authorization_code", code=code, code_verifier=verifier,
                                     client_id=CLIENT, redirect_uri=REDIRECT)).json()  # fmt: skip
    await broker.aclose()

    broker, app, resource, other = build(entra_like, database)  # the restart
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url=origin, timeout=20) as http:
        after = Setup(broker, http, broker.issuer, resource, other, database, entra_like)
        me = await http.get("/mcp", headers={"authorization": f"Bearer {tokens['access_token']}"})
        assert me.status_code == 200 and me.json()["sub"] == "alice"
        fresh = await after.token(grant_type="refresh_token", refresh_token=tokens["refresh_token"], client_id=CLIENT)
        assert fresh.status_code == 200
        assert await broker.provider_token(await _auth(after, fresh.json()["access_token"]))
        browser.http = http  # the same browser, its cookie kept: not asked again
        await after.code(browser)
        assert len(browser.pages) == 1
    await broker.aclose()


@pytest.mark.parametrize(
    "setup",
    [{"clients": (BrokerClient.preregistered("web", ["https://app.example/cb"], client_secret="web-secret-1"),)}],
    indirect=True,
)
async def test_a_confidential_client_proves_its_secret(setup: Setup) -> None:
    """RFC 6749 §2.3.1: Basic (form-urlencoded id and secret) or in the form; never without."""
    import base64

    browser = setup.browser()
    verifier, challenge = pkce()
    url = authorize_url(setup.issuer, "web", challenge, redirect_uri="https://app.example/cb")
    answer = await browser.sign_in(url)
    form = {"grant_type": "authorization_code", "code": answer["code"], "code_verifier": verifier,
            "redirect_uri": "https://app.example/cb"}  # fmt: skip
    for attempt in ({"client_id": "web"}, {"client_id": "web", "client_secret": "wrong"}):
        refused = await setup.token(**form, **attempt)
        assert refused.status_code == 401 and refused.json()["error"] == "invalid_client"
        assert refused.headers["www-authenticate"].startswith("Basic")
    basic = base64.b64encode(b"web:web-secret-1").decode()
    issued = await setup.http.post(f"{setup.issuer}/token", data=form, headers={"authorization": f"Basic {basic}"})
    assert issued.status_code == 200, issued.text
    refresh = {"grant_type": "refresh_token", "refresh_token": issued.json()["refresh_token"]}
    by_form = await setup.token(**refresh, client_id="web", client_secret="web-secret-1")
    assert by_form.status_code == 200


async def test_a_registered_confidential_client_gets_a_secret_that_works(setup: Setup) -> None:
    info = (await setup.http.post(f"{setup.issuer}/register", json={"redirect_uris": [REDIRECT]})).json()
    verifier, challenge = pkce()
    answer = await setup.browser().sign_in(authorize_url(setup.issuer, info["client_id"], challenge))
    credentials = {"client_id": info["client_id"], "client_secret": info["client_secret"]}
    response = await setup.token(grant_type="authorization_code", code=answer["code"], code_verifier=verifier,
                                 redirect_uri=REDIRECT, **credentials)  # fmt: skip
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("setup", [{"scopes_supported": ["mcp"], "default_scopes": ()}], indirect=True)
async def test_a_request_for_no_scope_is_still_asked_consent(setup: Setup) -> None:
    """With no default scope, a client asking for none asks for nothing the user approved
    before: the consent page all the same (an empty set is within any set)."""
    _, challenge = pkce()
    page = await setup.browser().get(authorize_url(setup.issuer, CLIENT, challenge, scope=None))  # type: ignore[arg-type]
    assert page.status_code == 200 and 'name="csrf"' in page.text and "no scope" in page.text


async def test_browser_based_clients_may_call_what_they_call_and_nothing_else(setup: Setup) -> None:
    """MCP Inspector calls the metadata, registration and token endpoints from its own origin:
    CORS there (preflights included); none on the pages a browser is sent to."""
    inspector = {"origin": "http://localhost:6274"}
    preflight = {**inspector, "access-control-request-method": "POST", "access-control-request-headers": "content-type"}
    for path in ("/.well-known/oauth-authorization-server/oauth", "/oauth/token", "/oauth/register", "/oauth/revoke"):
        answer = await setup.http.options(path, headers=preflight)
        assert answer.status_code == 200 and answer.headers["access-control-allow-origin"] in ("*", inspector["origin"])
    metadata = await setup.http.get("/.well-known/oauth-authorization-server/oauth", headers=inspector)
    assert metadata.headers["access-control-allow-origin"] in ("*", inspector["origin"])
    _, challenge = pkce()
    page = await setup.http.get(
        authorize_url(setup.issuer, CLIENT, challenge).removeprefix(setup.issuer.removesuffix("/oauth")),
        headers=inspector,
    )
    assert "access-control-allow-origin" not in page.headers


async def test_the_operator_reads_why_a_page_refused(setup: Setup, caplog: pytest.LogCaptureFixture) -> None:
    """The user sees a short page; the log says which client, which redirect URI, what is registered."""
    _, challenge = pkce()
    with caplog.at_level("INFO", logger="mcp_auth_middleware.broker"):
        await setup.browser().get(
            authorize_url(setup.issuer, CLIENT, challenge, redirect_uri="https://evil.example/cb")
        )
    assert "'https://evil.example/cb' is not one of ['http://127.0.0.1/callback']" in caplog.text
    assert f"client '{CLIENT}'" in caplog.text
