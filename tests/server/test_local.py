"""LocalAuthorizationServer: every endpoint, the OAuth 2.1 rules, and bad input (RFC 6749 §5.2 errors)."""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx2
import pytest

from mcp_auth_middleware import JWTValidator
from mcp_auth_middleware.server import LocalAuthorizationServer

ISSUER = "https://as.example"
RESOURCE = "https://mcp.example.com/mcp"
REDIRECT = "http://127.0.0.1:5555/callback"


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


@pytest.fixture
def server() -> LocalAuthorizationServer:
    return LocalAuthorizationServer(ISSUER, user="alice", scopes_supported=["mcp", "admin"])


@pytest.fixture
async def http(server: LocalAuthorizationServer) -> AsyncIterator[httpx2.AsyncClient]:
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=server.app), base_url=ISSUER) as c:
        yield c


async def register(http: httpx2.AsyncClient, **metadata: Any) -> dict[str, Any]:
    body = {
        "redirect_uris": [REDIRECT],
        "token_endpoint_auth_method": "none",
        "client_name": "t",
        "grant_types": ["authorization_code", "refresh_token"],
        **metadata,
    }
    response = await http.post("/register", json=body)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def authorize(http: httpx2.AsyncClient, client_id: str, challenge: str, **params: str) -> httpx2.Response:
    query = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": REDIRECT,
        "scope": "mcp",
        "state": "st",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "resource": RESOURCE,
        **params,
    }
    return await http.get("/authorize", params={k: v for k, v in query.items() if v is not None})


async def exchange(http: httpx2.AsyncClient, client_id: str, code: str, verifier: str, **extra: str) -> httpx2.Response:
    """The token request of the authorization code grant."""
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "client_id": client_id,
        "code_verifier": verifier,
        **extra,
    }
    return await http.post("/token", data=data)


async def code_flow(http: httpx2.AsyncClient, **authorize_params: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    client = await register(http)
    verifier, challenge = pkce()
    response = await authorize(http, client["client_id"], challenge, **authorize_params)
    assert response.status_code == 302, response.text
    query = parse_qs(urlsplit(response.headers["location"]).query)
    assert query["state"] == ["st"] and query["iss"] == [ISSUER]  # RFC 9207
    token = await exchange(http, client["client_id"], query["code"][0], verifier, resource=RESOURCE)
    assert token.status_code == 200, token.text
    return client, token.json(), query["code"][0]


async def test_metadata_and_openid_configuration(http: httpx2.AsyncClient) -> None:
    for path in ("/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"):
        document = (await http.get(path)).json()
        assert document["issuer"] == ISSUER
        assert document["code_challenge_methods_supported"] == ["S256"]
        assert document["introspection_endpoint"] == f"{ISSUER}/introspect"


async def test_full_code_flow_issues_rfc9068_token_for_the_resource(
    http: httpx2.AsyncClient, server: LocalAuthorizationServer
) -> None:
    client, tokens, _ = await code_flow(http)
    assert tokens["token_type"].lower() == "bearer" and tokens["refresh_token"]
    jwks = (await http.get("/jwks")).json()
    validator = JWTValidator(issuer=ISSUER, audience=RESOURCE, keys=jwks, require_at_jwt=True)
    info = await validator.validate(tokens["access_token"])
    assert info.sub == "alice" and info.client_id == client["client_id"] and info.scopes == {"mcp"}
    assert info.audience == (RESOURCE,)


async def test_pkce_required(http: httpx2.AsyncClient) -> None:
    client = await register(http)
    response = await authorize(http, client["client_id"], None, code_challenge_method=None)  # type: ignore[arg-type]
    assert response.status_code == 302
    assert parse_qs(urlsplit(response.headers["location"]).query)["error"] == ["invalid_request"]


async def test_pkce_plain_refused(http: httpx2.AsyncClient) -> None:
    client = await register(http)
    response = await authorize(http, client["client_id"], "x" * 43, code_challenge_method="plain")
    assert parse_qs(urlsplit(response.headers["location"]).query)["error"] == ["invalid_request"]


async def test_wrong_code_verifier_rejected(http: httpx2.AsyncClient) -> None:
    client = await register(http)
    _, challenge = pkce()
    response = await authorize(http, client["client_id"], challenge)
    code = parse_qs(urlsplit(response.headers["location"]).query)["code"][0]
    token = await exchange(http, client["client_id"], code, "w" * 50)
    assert token.status_code == 400 and token.json()["error"] == "invalid_grant"


async def test_reused_code_rejected_and_its_tokens_revoked(
    http: httpx2.AsyncClient, server: LocalAuthorizationServer
) -> None:
    client, tokens, code = await code_flow(http)
    again = await exchange(http, client["client_id"], code, "x" * 50)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    assert await server._lookup(tokens["access_token"], None) is None
    assert await server._lookup(tokens["refresh_token"], "refresh_token") is None


async def test_unregistered_redirect_uri_is_not_redirected_to(http: httpx2.AsyncClient) -> None:
    client = await register(http)
    _, challenge = pkce()
    response = await authorize(http, client["client_id"], challenge, redirect_uri="https://evil.example/cb")
    assert response.status_code == 400
    assert "location" not in response.headers


async def test_unknown_client_is_not_redirected_to(http: httpx2.AsyncClient) -> None:
    _, challenge = pkce()
    response = await authorize(http, "nobody", challenge)
    assert response.status_code in (400, 401) and "location" not in response.headers


@pytest.mark.parametrize("resource", ["not-a-uri", "https://mcp.example.com/mcp#frag"])
async def test_rfc8707_invalid_resource(http: httpx2.AsyncClient, resource: str) -> None:
    client = await register(http)
    _, challenge = pkce()
    response = await authorize(http, client["client_id"], challenge, resource=resource)
    assert response.status_code == 400 and response.json()["error"] == "invalid_target"


async def test_rfc8707_token_request_cannot_widen_resource(http: httpx2.AsyncClient) -> None:
    client = await register(http)
    verifier, challenge = pkce()
    response = await authorize(http, client["client_id"], challenge)
    code = parse_qs(urlsplit(response.headers["location"]).query)["code"][0]
    token = await exchange(http, client["client_id"], code, verifier, resource="https://other.example/api")
    assert token.status_code == 400 and token.json()["error"] == "invalid_target"


async def test_refresh_rotates_and_old_refresh_token_dies(http: httpx2.AsyncClient) -> None:
    client, tokens, _ = await code_flow(http)
    refresh = {
        "grant_type": "refresh_token",
        "refresh_token": tokens["refresh_token"],
        "client_id": client["client_id"],
    }
    refreshed = await http.post("/token", data=refresh)
    assert refreshed.status_code == 200, refreshed.text
    new = refreshed.json()
    assert new["refresh_token"] != tokens["refresh_token"]
    jwks = (await http.get("/jwks")).json()
    info = await JWTValidator(issuer=ISSUER, audience=RESOURCE, keys=jwks).validate(new["access_token"])
    assert info.audience == (RESOURCE,)  # the resource survives the refresh
    reused = await http.post("/token", data=refresh)  # the same request again
    assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"


async def test_client_credentials(http: httpx2.AsyncClient, server: LocalAuthorizationServer) -> None:
    server.register_client(client_id="svc", client_secret="svc-secret", grant_types=["client_credentials"])
    response = await http.post(
        "/token",
        data={"grant_type": "client_credentials", "scope": "mcp", "resource": RESOURCE},
        auth=("svc", "svc-secret"),
    )
    assert response.status_code == 200, response.text
    jwks = (await http.get("/jwks")).json()
    info = await JWTValidator(issuer=ISSUER, audience=RESOURCE, keys=jwks).validate(response.json()["access_token"])
    assert info.sub == "svc" and info.client_id == "svc"
    wrong = await http.post("/token", data={"grant_type": "client_credentials"}, auth=("svc", "nope"))
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"


async def test_revocation_then_introspection_inactive(
    http: httpx2.AsyncClient, server: LocalAuthorizationServer
) -> None:
    client, tokens, _ = await code_flow(http)
    server.register_resource_server("rs", "rs-secret", [RESOURCE])
    active = await http.post("/introspect", data={"token": tokens["access_token"]}, auth=("rs", "rs-secret"))
    assert active.json()["active"] is True and active.json()["aud"] == RESOURCE
    revoked = await http.post("/revoke", data={"token": tokens["access_token"], "client_id": client["client_id"]})
    assert revoked.status_code == 200
    inactive = await http.post("/introspect", data={"token": tokens["access_token"]}, auth=("rs", "rs-secret"))
    assert inactive.json() == {"active": False}


async def test_opaque_tokens(server: LocalAuthorizationServer) -> None:
    opaque = LocalAuthorizationServer(ISSUER, token_format="opaque", default_resource=RESOURCE)
    token = opaque.mint_token(sub="bob", scopes=["mcp"])
    assert token.count(".") == 0
    record = await opaque._lookup(token, None)
    assert record is not None and record["sub"] == "bob" and record["aud"] == RESOURCE


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "error"),
    [
        ("GET", "/token", {}, 405, None),
        ("POST", "/token", {"json": {"grant_type": "client_credentials"}}, 400, "invalid_request"),
        (
            "POST",
            "/token",
            {"data": {"grant_type": "password", "username": "a", "password": "b"}},
            400,
            "unsupported_grant_type",
        ),
        ("POST", "/token", {"data": {}}, 400, "invalid_request"),
        (
            "POST",
            "/token",
            {"content": b"grant_type=a&grant_type=b", "headers": {"content-type": "application/x-www-form-urlencoded"}},
            400,
            "invalid_request",
        ),
        (
            "POST",
            "/token",
            {
                "content": b"grant_type=" + b"x" * 70000,
                "headers": {"content-type": "application/x-www-form-urlencoded"},
            },
            400,
            "invalid_request",
        ),
        ("POST", "/register", {"content": b"not json"}, 400, "invalid_client_metadata"),
        ("POST", "/register", {"content": b'{"a": "' + b"x" * 70000 + b'"}'}, 413, "invalid_client_metadata"),
        ("POST", "/register", {"json": [1, 2]}, 400, "invalid_client_metadata"),
        ("GET", "/register", {}, 405, None),
        ("POST", "/authorize", {}, 405, None),
        ("GET", "/authorize", {"params": {"response_type": "token", "client_id": "x"}}, 400, None),
        ("POST", "/revoke", {"json": {"token": "x"}}, 400, "invalid_request"),
    ],
)
async def test_bad_requests_get_oauth_errors(
    http: httpx2.AsyncClient, method: str, path: str, kwargs: dict[str, Any], status: int, error: str | None
) -> None:
    response = await http.request(method, path, **kwargs)
    assert response.status_code == status, response.text
    if error:
        assert response.json()["error"] == error


@pytest.mark.parametrize("token_format", ["jwt", "opaque"])
async def test_mint_token_options_hold_for_both_formats(token_format: str) -> None:
    from authlib.integrations.httpx_client import AsyncOAuth2Client

    from mcp_auth_middleware import IntrospectionValidator, InvalidTokenError, TokenValidator

    server = LocalAuthorizationServer(ISSUER, token_format=token_format, scopes_supported="mcp notes:read")  # type: ignore[arg-type]
    server.register_resource_server("rs", "rs-secret", [RESOURCE])
    validator: TokenValidator = JWTValidator(issuer=ISSUER, audience=RESOURCE, keys=server.key.as_dict(private=False))
    if token_format == "opaque":  # asks the server's own introspection endpoint, in-process
        http = AsyncOAuth2Client(
            client_id="rs", client_secret="rs-secret", transport=httpx2.ASGITransport(app=server.app)
        )
        validator = IntrospectionValidator(
            f"{ISSUER}/introspect", client_id="rs", client_secret="rs-secret", audience=RESOURCE, http_client=http
        )
    token = server.mint_token(sub="dana", scopes="mcp notes:read", audience=RESOURCE, client_id="cli", expires_in=120)
    info = await validator.validate(token)
    assert (info.sub, info.client_id, info.scopes) == ("dana", "cli", {"mcp", "notes:read"})
    assert info.expires_at is not None and info.expires_at - info.claims["iat"] == 120  # expires_in honoured
    with pytest.raises(InvalidTokenError, match=r"expired|not active"):
        await validator.validate(server.mint_token(audience=RESOURCE, expires_in=-300))


# -- What real MCP clients need (TypeScript SDK schemas, browsers) -------------------------------


async def test_public_client_registration_has_no_secret_members(http: httpx2.AsyncClient) -> None:
    # RFC 7591 §3.2.1: a member is a valid value or absent; the TypeScript SDK rejects null.
    public = await register(http)
    assert "client_secret" not in public and "client_secret_expires_at" not in public
    assert all(value is not None for value in public.values())
    confidential = await register(http, token_endpoint_auth_method="client_secret_basic")
    assert confidential["client_secret"] and confidential["client_secret_expires_at"] == 0


@pytest.mark.parametrize(
    ("metadata", "error", "names"),
    [
        ({"redirect_uris": ["http://attacker.example/cb"]}, "invalid_redirect_uri", "redirect_uris"),
        ({"redirect_uris": ["https://app.example/cb#frag"]}, "invalid_redirect_uri", "redirect_uris"),
        ({"redirect_uris": ['https://app.example/"cb']}, "invalid_redirect_uri", "redirect_uris"),
        ({"scope": "mcp bogus"}, "invalid_client_metadata", "scope"),
        ({"grant_types": ["password"]}, "invalid_client_metadata", "grant_types"),
        ({"response_types": ["token"]}, "invalid_client_metadata", "response_types"),
        ({"token_endpoint_auth_method": "private_key_jwt"}, "invalid_client_metadata", "token_endpoint_auth_method"),
    ],
)
async def test_unsupported_client_metadata_is_refused_naming_the_member(
    http: httpx2.AsyncClient, metadata: dict[str, Any], error: str, names: str
) -> None:
    body = {"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none", **metadata}
    response = await http.post("/register", json=body)
    assert response.status_code == 400
    assert response.json()["error"] == error
    assert response.json()["error_description"].startswith(names)


async def test_a_forgotten_client_gets_invalid_client_at_once(http: httpx2.AsyncClient) -> None:
    # After a restart the server no longer knows the client: SDKs re-register on invalid_client.
    _, challenge = pkce()
    authorization = await authorize(http, "forgotten-client", challenge)
    assert authorization.status_code == 400 and authorization.json()["error"] == "invalid_client"
    token = await exchange(http, "forgotten-client", "some-code", "v" * 43)
    assert token.json()["error"] == "invalid_client"


async def test_no_scope_requested_gets_the_default_scope(
    http: httpx2.AsyncClient, server: LocalAuthorizationServer
) -> None:
    _, tokens, _ = await code_flow(http, scope=None)  # type: ignore[arg-type]
    assert tokens["scope"] == "mcp"  # never an empty-scope token that every resource refuses
    narrow = LocalAuthorizationServer(ISSUER, scopes_supported="mcp admin", default_scopes="admin")
    assert narrow.default_scopes == ["admin"]


async def test_browser_clients_get_cors_nosniff_and_no_store(http: httpx2.AsyncClient) -> None:
    origin = {"Origin": "http://localhost:6274"}
    for path in ("/.well-known/oauth-authorization-server", "/jwks"):
        response = await http.get(path, headers=origin)
        assert response.headers["access-control-allow-origin"] == "*"
        assert response.headers["x-content-type-options"] == "nosniff"
    for path in ("/register", "/token"):
        preflight = await http.options(
            path,
            headers={
                **origin,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type",
            },
        )
        assert preflight.status_code == 200 and preflight.headers["access-control-allow-origin"] == "*"
    registration = await http.post(
        "/register", json={"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none"}
    )
    assert registration.headers["cache-control"] == "no-store"  # RFC 7591 §3.2.1
    assert registration.headers["x-content-type-options"] == "nosniff"
    _, _, _ = await code_flow(http)
    token = await http.post("/token", data={"grant_type": "client_credentials"}, headers=origin)
    assert token.headers["access-control-allow-origin"] == "*"
    assert token.headers["cache-control"] == "no-store"  # RFC 6749 §5.1, on errors too


async def test_registrations_survive_a_restart_with_a_file(tmp_path: Any) -> None:
    # An SDK keeps its client id across a restart of the development server.
    file = tmp_path / "clients.json"
    first = LocalAuthorizationServer(ISSUER, registrations_file=file)
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=first.app), base_url=ISSUER) as c:
        client = await register(c)
    assert file.stat().st_mode & 0o777 == 0o600
    restarted = LocalAuthorizationServer(ISSUER, registrations_file=file)
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=restarted.app), base_url=ISSUER) as c:
        _, challenge = pkce()
        response = await authorize(c, client["client_id"], challenge)
    assert response.status_code == 302  # known: no invalid_client, no re-registration needed
    without_file = LocalAuthorizationServer(ISSUER)
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=without_file.app), base_url=ISSUER) as c:
        _, challenge = pkce()
        assert (await authorize(c, client["client_id"], challenge)).json()["error"] == "invalid_client"


async def test_reusing_a_rotated_out_refresh_token_revokes_its_family(
    http: httpx2.AsyncClient, server: LocalAuthorizationServer
) -> None:
    """RFC 9700 §4.14.2: an old refresh token used again means two parties hold it, so the
    tokens issued from it (the successor refresh token and its access token) are revoked."""
    client, first, _ = await code_flow(http)
    server.register_resource_server("rs", "rs-secret", [RESOURCE])
    old = {"grant_type": "refresh_token", "refresh_token": first["refresh_token"], "client_id": client["client_id"]}
    second = (await http.post("/token", data=old)).json()
    reused = await http.post("/token", data=old)  # an attacker (or the client) replays the old one
    assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"
    successor = {**old, "refresh_token": second["refresh_token"]}
    assert (await http.post("/token", data=successor)).json()["error"] == "invalid_grant"
    for access in (first["access_token"], second["access_token"]):
        answer = await http.post("/introspect", data={"token": access}, auth=("rs", "rs-secret"))
        assert answer.json() == {"active": False}


async def test_another_grant_of_the_same_client_is_not_revoked_by_it(
    http: httpx2.AsyncClient, server: LocalAuthorizationServer
) -> None:
    client, first, _ = await code_flow(http)
    _, other, _ = await code_flow(http)
    old = {"grant_type": "refresh_token", "refresh_token": first["refresh_token"], "client_id": client["client_id"]}
    await http.post("/token", data=old)
    await http.post("/token", data=old)
    server.register_resource_server("rs", "rs-secret", [RESOURCE])
    answer = await http.post("/introspect", data={"token": other["access_token"]}, auth=("rs", "rs-secret"))
    assert answer.json()["active"] is True


@pytest.mark.parametrize("parameter", ["client_secret", "code_verifier", "grant_type"])
async def test_the_token_endpoint_takes_no_parameters_from_the_url(http: httpx2.AsyncClient, parameter: str) -> None:
    """RFC 6749 §2.3.1, §3.2: credentials never in the request URI (logs, proxies keep it)."""
    client, _, _ = await code_flow(http)
    response = await http.post(
        "/token",
        params={parameter: "x"},
        data={"grant_type": "refresh_token", "refresh_token": "r", "client_id": client["client_id"]},
    )
    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_request",
        "error_description": "Parameters belong in the form body, not in the URL",
    }


async def test_two_client_authentication_methods_are_an_invalid_request(
    http: httpx2.AsyncClient, server: LocalAuthorizationServer
) -> None:
    """RFC 6749 §2.3, §5.2: Basic credentials and a client_secret in the body is not a token."""
    server.register_client(client_id="svc", client_secret="svc-secret", grant_types=["client_credentials"])
    response = await http.post(
        "/token",
        data={"grant_type": "client_credentials", "client_secret": "svc-secret"},
        auth=("svc", "svc-secret"),
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert "more than one client authentication method" in response.json()["error_description"]


async def test_several_redirect_uris_and_none_in_the_request_is_an_error(http: httpx2.AsyncClient) -> None:
    """RFC 6749 §3.1.2.3, OAuth 2.1 §4.1.1: the server cannot guess which one; never the first."""
    client = await register(http, redirect_uris=[REDIRECT, "http://127.0.0.1:6666/other"])
    _, challenge = pkce()
    response = await authorize(http, client["client_id"], challenge, redirect_uri=None)  # type: ignore[arg-type]
    assert response.status_code == 400 and "location" not in response.headers
    assert response.json()["error"] == "invalid_request"
    single = await register(http)
    one = await authorize(http, single["client_id"], challenge, redirect_uri=None)  # type: ignore[arg-type]
    assert one.status_code == 302 and one.headers["location"].startswith(REDIRECT)  # one: it is that one


async def test_no_token_or_secret_reaches_a_log_line(
    http: httpx2.AsyncClient, server: LocalAuthorizationServer, caplog: pytest.LogCaptureFixture
) -> None:
    """docs/security.md: tokens are never logged, not even by Authlib's DEBUG lines (which log
    issued tokens and the client with %r)."""
    server.register_client(client_id="svc", client_secret="svc-secret-value", grant_types=["client_credentials"])
    with caplog.at_level("DEBUG"):
        client, tokens, _ = await code_flow(http)
        refreshed = await http.post(
            "/token",
            data={
                "grant_type": "refresh_token",
                "refresh_token": tokens["refresh_token"],
                "client_id": client["client_id"],
            },
        )
        service = await http.post("/token", data={"grant_type": "client_credentials"}, auth=("svc", "svc-secret-value"))
    secrets_seen = [
        tokens["access_token"],
        tokens["refresh_token"],
        refreshed.json()["access_token"],
        refreshed.json()["refresh_token"],
        service.json()["access_token"],
        "svc-secret-value",
    ]
    assert any(r.name.startswith("authlib") for r in caplog.records)  # Authlib did log at DEBUG
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert not [s for s in secrets_seen if s in text]
    assert "svc-secret-value" not in repr(server.clients["svc"])
