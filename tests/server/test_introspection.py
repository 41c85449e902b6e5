"""IntrospectionEndpoint: RFC 7662 rules (RFC 7662 §2, §4), client authentication, rate limiting."""

from __future__ import annotations

import base64
import time
from typing import Any

import httpx2
import pytest

from mcp_auth_middleware.server import IntrospectionClient, IntrospectionEndpoint, hash_secret

RESOURCE = "https://mcp.example.com/mcp"
NOW = int(time.time())
TOKENS: dict[str, dict[str, Any]] = {
    "good": {
        "scope": "mcp read",
        "client_id": "app",
        "sub": "alice",
        "username": "alice",
        "aud": RESOURCE,
        "exp": NOW + 600,
        "iat": NOW,
        "iss": "https://as.example",
        "jti": "j1",
        "token_type": "Bearer",
    },
    "expired": {"scope": "mcp", "client_id": "app", "aud": RESOURCE, "exp": NOW - 10},
    "other-aud": {"scope": "mcp", "client_id": "app", "aud": "https://other.example/api", "exp": NOW + 600},
    "own": {"scope": "x", "client_id": "rs", "aud": "https://other.example/api", "exp": NOW + 600},
    "dpop-bound": {
        "scope": "mcp",
        "client_id": "app",
        "aud": RESOURCE,
        "exp": NOW + 600,
        "iss": "https://as.example",
        "token_type": "DPoP",
        "cnf": {"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"},
    },
    "mtls-bound": {
        "scope": "mcp",
        "client_id": "app",
        "aud": RESOURCE,
        "exp": NOW + 600,
        "iss": "https://as.example",
        "cnf": {"x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"},
    },
}
REFRESH = {"refresh-1": {"client_id": "app", "aud": RESOURCE, "token_type": "refresh_token", "sub": "alice"}}
lookups: list[tuple[str, str | None]] = []


async def lookup(token: str, hint: str | None) -> dict[str, Any] | None:
    lookups.append((token, hint))
    return TOKENS.get(token) or REFRESH.get(token)


def endpoint(**options: Any) -> IntrospectionEndpoint:
    clients = {
        "rs": IntrospectionClient.with_secret("rs", "s3cret", [RESOURCE]),
        "rs2": IntrospectionClient.with_secret("rs2", "other", [RESOURCE]),
    }
    return IntrospectionEndpoint(lookup, clients, **options)


def client(app: Any, address: str = "10.0.0.1") -> httpx2.AsyncClient:
    transport = httpx2.ASGITransport(app=app, client=(address, 1234))
    return httpx2.AsyncClient(transport=transport, base_url="https://as.example")


BASIC = {"Authorization": "Basic " + base64.b64encode(b"rs:s3cret").decode()}


async def test_active_token_full_response() -> None:
    async with client(endpoint()) as c:
        response = await c.post("/introspect", data={"token": "good"}, headers=BASIC)
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["active"] is True
    assert body["scope"] == "mcp read" and body["sub"] == "alice" and body["aud"] == RESOURCE


@pytest.mark.parametrize("token", ["unknown", "expired", "other-aud"])
async def test_inactive_tokens_all_look_the_same(token: str) -> None:
    async with client(endpoint()) as c:
        response = await c.post("/introspect", data={"token": token}, headers=BASIC)
    assert response.status_code == 200
    assert response.content == b'{"active": false}'


async def test_own_tokens_visible_to_their_client() -> None:
    async with client(endpoint()) as c:
        response = await c.post("/introspect", data={"token": "own"}, headers=BASIC)
    assert response.json()["active"] is True


async def test_client_secret_post() -> None:
    async with client(endpoint()) as c:
        response = await c.post("/introspect", data={"token": "good", "client_id": "rs", "client_secret": "s3cret"})
    assert response.json()["active"] is True


@pytest.mark.parametrize(
    ("headers", "data"),
    [
        ({}, {"token": "good"}),
        ({"Authorization": "Basic " + base64.b64encode(b"rs:wrong").decode()}, {"token": "good"}),
        ({"Authorization": "Basic " + base64.b64encode(b"nobody:s3cret").decode()}, {"token": "good"}),
        ({"Authorization": "Basic !!!notbase64"}, {"token": "good"}),
        ({"Authorization": "Bearer good"}, {"token": "good"}),
        ({}, {"token": "good", "client_id": "rs"}),
    ],
)
async def test_client_authentication_required(headers: dict[str, str], data: dict[str, str]) -> None:
    async with client(endpoint()) as c:
        response = await c.post("/introspect", data=data, headers=headers)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert response.headers["www-authenticate"].startswith("Basic")


async def test_secrets_stored_hashed_and_compared_in_constant_time() -> None:
    stored = IntrospectionClient.with_secret("rs", "s3cret")
    assert stored.secret_hash == hash_secret("s3cret") and "s3cret" not in repr(stored)
    assert stored.check_secret("s3cret") and not stored.check_secret("s3cre")


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
async def test_post_only(method: str) -> None:
    async with client(endpoint()) as c:
        response = await c.request(method, "/introspect", headers=BASIC)
    assert response.status_code == 405


async def test_form_encoding_only() -> None:
    async with client(endpoint()) as c:
        response = await c.post("/introspect", json={"token": "good"}, headers=BASIC)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


@pytest.mark.parametrize("body", [b"token_type_hint=access_token", b"token=", b"token=a&token=b", b"\xff\xfe=1"])
async def test_token_required_once(body: bytes) -> None:
    async with client(endpoint()) as c:
        response = await c.post(
            "/introspect", content=body, headers={**BASIC, "Content-Type": "application/x-www-form-urlencoded"}
        )
    assert response.status_code == 400


async def test_oversized_body_413() -> None:
    async with client(endpoint(max_body=1000)) as c:
        response = await c.post("/introspect", data={"token": "x" * 5000}, headers=BASIC)
    assert response.status_code == 413


async def test_wrong_hint_still_finds_the_token() -> None:
    lookups.clear()
    async with client(endpoint()) as c:
        response = await c.post(
            "/introspect", data={"token": "refresh-1", "token_type_hint": "access_token"}, headers=BASIC
        )
    body = response.json()
    assert body["active"] is True and body["token_type"] == "refresh_token"
    assert lookups == [("refresh-1", "access_token")]


async def test_scanning_client_is_limited_and_others_are_not() -> None:
    app = endpoint(client_limit="5/minute", address_limit="1000/minute")
    async with client(app, "10.0.0.7") as scanner, client(app, "10.0.0.8") as honest:
        statuses = [
            (await scanner.post("/introspect", data={"token": f"guess-{i}"}, headers=BASIC)).status_code
            for i in range(8)
        ]
        assert statuses[:5] == [200] * 5 and statuses[-1] == 429
        blocked = await scanner.post("/introspect", data={"token": "good"}, headers=BASIC)
        assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) >= 1
        other_client = {"Authorization": "Basic " + base64.b64encode(b"rs2:other").decode()}
        assert (await honest.post("/introspect", data={"token": "good"}, headers=other_client)).json()["active"]


async def test_address_limit_covers_failed_client_auth() -> None:
    app = endpoint(address_limit="3/minute")
    async with client(app, "10.0.0.9") as c, client(app, "10.0.0.10") as other:
        wrong = {"Authorization": "Basic " + base64.b64encode(b"rs:nope").decode()}
        statuses = [(await c.post("/introspect", data={"token": "t"}, headers=wrong)).status_code for _ in range(5)]
        assert statuses[:3] == [401] * 3 and statuses[-1] == 429
        assert (await other.post("/introspect", data={"token": "good"}, headers=BASIC)).status_code == 200


@pytest.mark.parametrize("token", ["dpop-bound", "mtls-bound"])
async def test_confirmation_claim_is_part_of_the_answer(token: str) -> None:
    # RFC 9449 §6.2, RFC 8705 §3.2: the binding travels with the introspection response.
    async with client(endpoint()) as c:
        answer = (await c.post("/introspect", data={"token": token}, headers=BASIC)).json()
    assert answer["active"] is True
    assert answer["cnf"] == TOKENS[token]["cnf"]


@pytest.mark.parametrize("token", ["dpop-bound", "mtls-bound"])
async def test_bound_token_refused_as_bearer_end_to_end(token: str) -> None:
    # Our IntrospectionValidator asking our IntrospectionEndpoint, on real uvicorn: a stolen
    # bound token presented as Bearer is refused (RFC 9449 §7.2).
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from mcp_auth_middleware import IntrospectionValidator, MCPAuthMiddleware
    from mcp_auth_middleware.testing import serve

    authorization_server = Starlette(routes=[Route("/introspect", endpoint(), methods=["POST"])])
    app = Starlette(routes=[Route("/mcp", lambda request: PlainTextResponse("ok"), methods=["POST"])])
    with serve(authorization_server) as base:
        remote = IntrospectionValidator(
            f"{base}/introspect", client_id="rs", client_secret="s3cret", issuer="https://as.example"
        )
        protected = MCPAuthMiddleware(
            app, resource=RESOURCE, authorization_servers=["https://as.example"], validator=remote
        )
        async with httpx2.AsyncClient(
            transport=httpx2.ASGITransport(app=protected), base_url="https://mcp.example.com"
        ) as c:
            bound = await c.post("/mcp", headers={"Authorization": f"Bearer {token}"})
            plain = await c.post("/mcp", headers={"Authorization": "Bearer good"})
        await remote.aclose()
    assert bound.status_code == 401
    assert "sender-constrained" in bound.headers["www-authenticate"]
    assert plain.status_code == 200  # the same path accepts an unbound token


FORM = ("content-type", "application/x-www-form-urlencoded")


@pytest.mark.parametrize(
    "headers",
    [
        [FORM, ("authorization", BASIC["Authorization"]), ("authorization", "Basic cnMyOm90aGVy")],
        [FORM, ("content-type", "application/json"), ("authorization", BASIC["Authorization"])],
    ],
)
async def test_repeated_singleton_headers_400(headers: list[tuple[str, str]]) -> None:
    async with client(endpoint()) as c:
        assert (await c.post("/introspect", content=b"token=good", headers=headers[::2])).json()["active"]
        response = await c.post("/introspect", content=b"token=good", headers=headers)
    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_request",
        "error_description": "A header that may appear once is repeated",
    }


async def test_two_client_authentication_methods_are_an_invalid_request() -> None:
    """RFC 6749 §2.3: one method per request; §5.2: more than one is `invalid_request`, as the
    local authorization server's token endpoint answers too."""
    async with client(endpoint()) as c:
        response = await c.post(
            "/introspect", data={"token": "good", "client_id": "rs", "client_secret": "s3cret"}, headers=BASIC
        )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert "more than one client authentication method" in response.json()["error_description"]


@pytest.mark.parametrize(
    ("dates", "active"),
    [
        ({"exp": str(int(time.time()) + 600)}, True),  # a Redis hash returns strings
        ({"exp": str(int(time.time()) - 600)}, False),
        ({"exp": "tomorrow"}, False),  # unreadable: fail closed, never active for ever
        ({"nbf": "soon"}, False),
        ({"exp": "nan"}, False),
        ({"exp": True}, False),
        ({"exp": [1]}, False),
        ({"nbf": str(int(time.time()) + 600)}, False),
    ],
)
async def test_dates_from_the_lookup_are_numbers_or_the_token_is_inactive(
    dates: dict[str, object], active: bool, caplog: pytest.LogCaptureFixture
) -> None:
    async def lookup(token: str, hint: str | None) -> dict[str, object] | None:
        return {"sub": "alice", "aud": "https://mcp.example.com/mcp", "client_id": "app", **dates}

    clients = {"rs": IntrospectionClient.with_secret("rs", "s3cret", ["https://mcp.example.com/mcp"])}
    async with client(IntrospectionEndpoint(lookup, clients)) as c:
        answer = (await c.post("/introspect", data={"token": "t"}, headers=BASIC)).json()
    assert answer["active"] is active
    if active:
        assert isinstance(answer["exp"], float | int)  # numbers on the wire (RFC 7662 §2.2)
    if dates in ({"exp": "tomorrow"}, {"nbf": "soon"}):
        assert "not a number of seconds" in caplog.text
