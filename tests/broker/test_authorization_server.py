"""The broker's browser side as users and attackers meet it, with the Entra-like provider (node
oidc-provider) behind it and the middleware in front of the MCP server: a sign-in, the
authorization request (redirect URIs, PKCE, parameters), consent and the browser binding, the
provider's callback and its failures, a restart."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx2
import pytest

from mcp_auth_middleware.broker.providers import oidc
from mcp_auth_middleware.testing import free_port

from .conftest import (
    CLIENT,
    REDIRECT,
    EntraLike,
    Setup,
    at_the_provider,
    auth_of,
    authorize_url,
    build,
    client_answer,
    pkce,
)


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
    provider_token = await setup.broker.provider_token(await auth_of(setup, tokens["access_token"]))
    assert provider_token not in str(tokens) and provider_token not in sealed


async def test_the_same_browser_is_not_asked_again_for_what_it_approved(setup: Setup) -> None:
    browser = setup.browser()
    await setup.code(browser)
    await setup.code(browser)
    assert len(browser.pages) == 1
    await setup.code(browser, scope="mcp notes:delete")  # more than approved: asked again
    assert len(browser.pages) == 2 and "notes:delete" in browser.pages[1]


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
    location = await at_the_provider(setup, mine)
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


async def test_the_user_cancels_at_the_provider(setup: Setup) -> None:
    _, challenge = pkce()
    answer = await setup.browser().sign_in(authorize_url(setup.issuer, CLIENT, challenge), deny_at_provider=True)
    assert answer["error"] == "access_denied" and answer["state"] == "client-state"
    assert setup.stored("provider:") == 0 and setup.stored("broker:code:") == 0


async def test_an_error_in_the_callback_is_a_clear_page(setup: Setup) -> None:
    browser = setup.browser()
    location = await at_the_provider(setup, browser)
    state = dict(parse_qsl(urlsplit(location).query))["state"]
    query = urlencode({"error": "server_error", "state": state, "iss": setup.provider.issuer})
    response = await browser.get(f"{setup.issuer}/callback?{query}")
    assert response.status_code == 400 and "The sign-in did not complete" in response.text
    assert "<script" not in response.text and setup.stored("provider:") == 0


async def test_a_callback_naming_another_issuer_is_refused(setup: Setup) -> None:
    """RFC 9207 §2.4: a mix-up (the code is another provider's)."""
    browser = setup.browser()
    location = await at_the_provider(setup, browser)
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
        location = await at_the_provider(setup, browser)
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
        assert await broker.provider_token(await auth_of(after, fresh.json()["access_token"]))
        browser.http = http  # the same browser, its cookie kept: not asked again
        await after.code(browser)
        assert len(browser.pages) == 1
    await broker.aclose()


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
