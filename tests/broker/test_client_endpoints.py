"""What clients call without a browser (`broker/client_endpoints.py`), after a real sign-in through
the Entra-like provider: the code (once, by its client, with its verifier and redirect URI),
refresh tokens (rotation, replay, another client), resources (RFC 8707), revocation, malformed
requests, client authentication and RFC 7591 registration with its policy."""

from __future__ import annotations

import base64
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from mcp_auth_middleware.broker.authorization_server import Broker
from mcp_auth_middleware.broker.clients import BrokerClient, RegistrationPolicy
from mcp_auth_middleware.broker.upstream import ProviderError

from .conftest import (
    CLIENT,
    REDIRECT,
    SECRET,
    Setup,
    auth_of,
    authorize_url,
    pkce,
)


async def test_refresh_rotates_and_keeps_the_audience(setup: Setup) -> None:
    tokens = await setup.tokens()
    response = await setup.token(grant_type="refresh_token", refresh_token=tokens["refresh_token"], client_id=CLIENT)
    fresh = response.json()
    assert response.status_code == 200 and fresh["refresh_token"] != tokens["refresh_token"]
    auth = await auth_of(setup, fresh["access_token"])
    assert auth.audience == (setup.resource,) and auth.sub == "alice"


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
        await setup.broker.provider_token(await auth_of(setup, rotated["access_token"]))


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
    auth = await auth_of(setup, tokens["access_token"])
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


@pytest.mark.parametrize(
    "setup",
    [{"clients": (BrokerClient.preregistered("web", ["https://app.example/cb"], client_secret="web-secret-1"),)}],
    indirect=True,
)
async def test_a_repeated_authorization_header_is_refused(setup: Setup) -> None:
    """Two Basic credentials: which one a proxy in front checked is unknowable; neither is used."""
    good, bad = base64.b64encode(b"web:web-secret-1").decode(), base64.b64encode(b"web:wrong").decode()
    headers = [("authorization", f"Basic {bad}"), ("authorization", f"Basic {good}")]
    form = {"grant_type": "refresh_token", "refresh_token": "x.y"}
    response = await setup.http.post(f"{setup.issuer}/token", data=form, headers=headers)
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"


def test_a_misspelled_broker_option_is_named(tmp_path: Path) -> None:
    from mcp_auth_middleware.broker.providers import oidc

    with pytest.raises(TypeError, match="acess_token_lifetime"):
        Broker.of("https://mcp.example.com/oauth", oidc("https://idp.example.com", "i", "s"), "https://mcp.example.com/mcp",
                  [SECRET], storage=str(tmp_path / "b.db"), acess_token_lifetime=60)  # fmt: skip
