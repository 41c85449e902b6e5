"""client_authentication: each method puts the client's credential where RFC 6749 §2.3.1 and
RFC 7523 §2.2 say, and a method without its credential is a ValueError at construction."""

from __future__ import annotations

import base64
from urllib.parse import parse_qs

import httpx2
import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey

from mcp_auth_middleware.client_auth import ClientCredentialsBearer, client_authentication
from mcp_auth_middleware.errors import ConfigurationError

URL = "https://auth.example.com/token"


async def sent(auth: httpx2.Auth) -> httpx2.Request:
    seen: list[httpx2.Request] = []

    def record(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        return httpx2.Response(200, json={})

    async with httpx2.AsyncClient(transport=httpx2.MockTransport(record)) as client:
        await client.post(URL, data={"grant_type": "x"}, auth=auth)
    return seen[0]


async def test_each_method_puts_the_credential_where_it_belongs() -> None:
    basic = await sent(client_authentication("rs", "s3cret", "client_secret_basic", None))
    assert basic.headers["authorization"] == "Basic " + base64.b64encode(b"rs:s3cret").decode()
    post = parse_qs((await sent(client_authentication("rs", "s3cret", "client_secret_post", None))).content.decode())
    assert post["client_id"] == ["rs"] and post["client_secret"] == ["s3cret"]
    key = RSAKey.generate_key(2048, private=True)
    signed = await sent(client_authentication("rs", None, "private_key_jwt", key.as_pem(private=True)))
    form = parse_qs(signed.content.decode())
    assert form["client_assertion_type"] == ["urn:ietf:params:oauth:client-assertion-type:jwt-bearer"]
    claims = jwt.decode(form["client_assertion"][0], key).claims
    assert claims["iss"] == claims["sub"] == "rs" and claims["aud"] == URL and "authorization" not in signed.headers


def test_a_method_without_its_credential_is_refused() -> None:
    with pytest.raises(ValueError, match="private_key_jwt needs private_key="):
        client_authentication("rs", "s", "private_key_jwt", None)
    with pytest.raises(ValueError, match="client_secret_post needs client_secret="):
        client_authentication("rs", None, "client_secret_post", None)
    with pytest.raises(ValueError, match="auth_method must be"):
        client_authentication("rs", "s", "tls_client_auth", None)  # type: ignore[arg-type]


async def test_a_bearer_token_of_its_own_is_fetched_once_and_again_after_a_401() -> None:
    """RFC 7662 §2.1: a resource server may be let in with a bearer token of its own; it is
    asked for by the client credentials grant, reused, and asked for again when refused."""
    issued: list[str] = []
    refused = {"first-token-revoked"}

    def server(request: httpx2.Request) -> httpx2.Response:
        if request.url.path == "/token":
            form = parse_qs(request.content.decode())
            assert form == {"grant_type": ["client_credentials"], "scope": ["introspect"]}
            assert request.headers["authorization"].startswith("Basic ")  # the client authenticated
            issued.append("first-token-revoked" if not issued else f"token-{len(issued)}")
            return httpx2.Response(200, json={"access_token": issued[-1], "expires_in": 3600})
        bearer = request.headers["authorization"].removeprefix("Bearer ")
        return httpx2.Response(401 if bearer in refused else 200, json={"active": False, "bearer": bearer})

    client_auth = client_authentication("rs", "s3cret", "client_secret_basic", None)
    auth = ClientCredentialsBearer(URL, client_auth, "introspect")
    async with httpx2.AsyncClient(transport=httpx2.MockTransport(server)) as client:
        first = await client.post("https://auth.example.com/introspect", data={"token": "t"}, auth=auth)
        second = await client.post("https://auth.example.com/introspect", data={"token": "t"}, auth=auth)
    assert first.status_code == 200 and first.json()["bearer"] == "token-1"  # refused once, fetched again
    assert second.json()["bearer"] == "token-1"  # kept
    assert issued == ["first-token-revoked", "token-1"]


async def test_no_token_for_introspection_is_a_configuration_error() -> None:
    def server(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(401, json={"error": "invalid_client"})

    auth = ClientCredentialsBearer(URL, client_authentication("rs", "wrong", "client_secret_basic", None), None)
    async with httpx2.AsyncClient(transport=httpx2.MockTransport(server)) as client:
        with pytest.raises(ConfigurationError) as raised:
            await client.post("https://auth.example.com/introspect", data={"token": "t"}, auth=auth)
    assert "gave this resource server no token for introspection" in str(raised.value.detail)
