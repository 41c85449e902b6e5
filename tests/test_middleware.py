"""The request path, in-process: metadata, challenges, errors, attachment, CORS, pass-through."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx2
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from mcp_auth_middleware import (
    AuthInfo,
    AuthorizationServerUnavailableError,
    InsufficientScopeError,
    InvalidTokenError,
    MCPAuthMiddleware,
)
from mcp_auth_middleware.testing import LocalIssuer

from .conftest import ISSUER, METADATA_URL, RESOURCE, asgi_client, bearer, echo_app, http_scope

Factory = Callable[..., MCPAuthMiddleware]


def parse_challenge(value: str) -> tuple[str, dict[str, str]]:
    scheme, _, rest = value.partition(" ")
    params: dict[str, str] = {}
    for part in rest.split('", '):
        name, _, val = part.partition("=")
        params[name.strip()] = val.strip('"')
    return scheme, params


# -- RFC 9728 metadata (RFC 9728 §2, §3; MCP authorization) ---------------------------------------


@pytest.mark.parametrize("path", ["/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource"])
async def test_metadata_served_at_path_inserted_and_root(client: httpx2.AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert "max-age" in response.headers["cache-control"]
    assert response.json() == {
        "resource": RESOURCE,
        "authorization_servers": [ISSUER],
        "bearer_methods_supported": ["header"],
    }


async def test_resource_kept_byte_for_byte(make_app: Factory) -> None:
    resource = "https://MCP.example.com/Mcp/"
    app = MCPAuthMiddleware(
        echo_app(), resource=resource, authorization_servers=[ISSUER], validator=LocalIssuer(ISSUER).validator()
    )
    async with asgi_client(app) as c:
        response = await c.get("/.well-known/oauth-protected-resource/Mcp/")
    assert response.json()["resource"] == resource


async def test_scopes_supported_never_offline_access_and_empty_members_omitted(make_app: Factory) -> None:
    app = make_app(required_scopes=["mcp"], scopes_supported=["mcp", "offline_access", "admin"], resource_name="Demo")
    async with asgi_client(app) as c:
        document = (await c.get("/.well-known/oauth-protected-resource/mcp")).json()
    assert document["scopes_supported"] == ["mcp", "admin"]
    assert document["resource_name"] == "Demo"
    assert "resource_documentation" not in document


async def test_metadata_head_and_wrong_method(client: httpx2.AsyncClient) -> None:
    head = await client.head("/.well-known/oauth-protected-resource/mcp")
    assert head.status_code == 200
    assert head.content == b""
    post = await client.post("/.well-known/oauth-protected-resource/mcp")
    assert post.status_code == 405


def test_authorization_servers_default_to_the_validators_issuers() -> None:
    issuer = LocalIssuer("https://issuer.example")
    app = MCPAuthMiddleware(echo_app(), resource=RESOURCE, validator=issuer.validator())
    assert app.metadata.document["authorization_servers"] == ["https://issuer.example"]  # RFC 9728 §2


@pytest.mark.parametrize("resource", ["mcp.example.com/mcp", "https://mcp.example.com/mcp#frag", "ftp://x/y"])
def test_resource_must_be_absolute_without_fragment(resource: str) -> None:
    with pytest.raises(ValueError, match="resource"):
        MCPAuthMiddleware(
            echo_app(), resource=resource, authorization_servers=[ISSUER], validator=LocalIssuer().validator()
        )


# -- Challenges (RFC 6750 §3, MCP authorization: Error Handling) ----------------------------------


async def test_no_token_gets_challenge_without_error(make_app: Factory) -> None:
    async with asgi_client(make_app(required_scopes=["mcp"])) as c:
        response = await c.post("/mcp", json={})
    assert response.status_code == 401
    scheme, params = parse_challenge(response.headers["www-authenticate"])
    assert scheme == "Bearer"
    assert params == {"scope": "mcp", "resource_metadata": METADATA_URL}


async def test_other_scheme_gets_plain_challenge(client: httpx2.AsyncClient) -> None:
    response = await client.post("/mcp", headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert response.status_code == 401
    assert "error=" not in response.headers["www-authenticate"]


@pytest.mark.parametrize("scheme", ["bearer", "BEARER", "Bearer", "bEaReR"])
async def test_scheme_is_case_insensitive(client: httpx2.AsyncClient, token: str, scheme: str) -> None:
    response = await client.post("/mcp", headers={"Authorization": f"{scheme} {token}"})
    assert response.status_code == 200
    assert response.json()["sub"] == "alice"


async def test_invalid_token_401_with_fixed_description(client: httpx2.AsyncClient) -> None:
    response = await client.post("/mcp", headers=bearer("not-a-real-token"))
    assert response.status_code == 401
    _, params = parse_challenge(response.headers["www-authenticate"])
    assert params["error"] == "invalid_token"
    assert params["resource_metadata"] == METADATA_URL
    assert "not-a-real-token" not in response.headers["www-authenticate"]
    assert "not-a-real-token" not in response.text


async def test_expired_token_401(client: httpx2.AsyncClient, issuer: LocalIssuer) -> None:
    expired = issuer.mint_token(audience=RESOURCE, expires_in=-120)
    response = await client.post("/mcp", headers=bearer(expired))
    assert response.status_code == 401
    assert 'error_description="The access token has expired"' in response.headers["www-authenticate"]


async def test_token_for_another_resource_rejected(client: httpx2.AsyncClient, issuer: LocalIssuer) -> None:
    other = issuer.mint_token(audience="https://other.example.com/mcp")
    response = await client.post("/mcp", headers=bearer(other))
    assert response.status_code == 401
    assert "not issued for this resource" in response.headers["www-authenticate"]


async def test_two_authorization_headers_400(client: httpx2.AsyncClient, token: str) -> None:
    response = await client.post(
        "/mcp", headers=[("Authorization", f"Bearer {token}"), ("Authorization", f"Bearer {token}")]
    )
    assert response.status_code == 400
    _, params = parse_challenge(response.headers["www-authenticate"])
    assert params["error"] == "invalid_request"
    assert params["resource_metadata"] == METADATA_URL


@pytest.mark.parametrize("with_header", [True, False])
async def test_token_in_query_never_authenticates(client: httpx2.AsyncClient, token: str, with_header: bool) -> None:
    headers = bearer(token) if with_header else {}
    response = await client.post("/mcp", params={"access_token": token}, headers=headers)
    assert response.status_code == 400
    assert token not in response.text


async def test_percent_encoded_query_key_still_refused(client: httpx2.AsyncClient, token: str) -> None:
    response = await client.post(f"/mcp?access%5Ftoken={token}", headers=bearer(token))
    assert response.status_code == 400
    assert token not in response.text


async def test_query_mentioning_access_token_in_a_value_is_fine(client: httpx2.AsyncClient, token: str) -> None:
    response = await client.post("/mcp", params={"q": "access_token"}, headers=bearer(token))
    assert response.status_code == 200


@pytest.mark.parametrize("with_header", [True, False])
async def test_token_in_form_body_400(client: httpx2.AsyncClient, token: str, with_header: bool) -> None:
    headers = bearer(token) if with_header else {}
    response = await client.post("/mcp", data={"access_token": token}, headers=headers)
    assert response.status_code == 400
    assert 'error="invalid_request"' in response.headers["www-authenticate"]


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
async def test_token_in_form_body_400_whatever_the_method(client: httpx2.AsyncClient, token: str, method: str) -> None:
    # RFC 6750 §2.2 holds for every method whose body has semantics; §3.1: two methods -> 400.
    response = await client.request(
        method,
        "/mcp",
        content=f"access_token={token}",
        headers={**bearer(token), "content-type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 400
    assert 'error="invalid_request"' in response.headers["www-authenticate"]
    assert token not in response.text


async def test_two_content_types_400(client: httpx2.AsyncClient, token: str) -> None:
    # Starlette reads the first Content-Type: a form body must not hide behind a second one.
    response = await client.post(
        "/mcp",
        content=f"access_token={token}",
        headers=[
            ("authorization", f"Bearer {token}"),
            ("content-type", "application/x-www-form-urlencoded"),
            ("content-type", "application/json"),
        ],
    )
    assert response.status_code == 400
    assert 'error="invalid_request"' in response.headers["www-authenticate"]


async def test_form_body_without_token_is_replayed_untouched(client: httpx2.AsyncClient, token: str) -> None:
    response = await client.post("/mcp", data={"a": "1", "b": "two"}, headers=bearer(token))
    assert response.status_code == 200
    assert response.json()["body"] == "a=1&b=two"


async def test_oversized_form_body_413(make_app: Factory, token: str) -> None:
    async with asgi_client(make_app(max_form_body=100)) as c:
        response = await c.post("/mcp", data={"a": "x" * 500}, headers=bearer(token))
    assert response.status_code == 413


async def test_missing_required_scope_403_names_all_required(make_app: Factory, issuer: LocalIssuer) -> None:
    narrow = issuer.mint_token(audience=RESOURCE, scopes=["mcp"])
    async with asgi_client(make_app(required_scopes=["mcp", "tools:write"])) as c:
        response = await c.post("/mcp", headers=bearer(narrow))
    assert response.status_code == 403
    _, params = parse_challenge(response.headers["www-authenticate"])
    assert params["error"] == "insufficient_scope"
    assert params["scope"] == "mcp tools:write"
    assert params["resource_metadata"] == METADATA_URL


async def test_valid_token_with_required_scopes_passes(make_app: Factory, token: str) -> None:
    async with asgi_client(make_app(required_scopes=["mcp"])) as c:
        response = await c.post("/mcp", headers=bearer(token))
    assert response.status_code == 200


async def test_one_validator_shared_by_two_resources_binds_each_its_own_audience(issuer: LocalIssuer) -> None:
    # MCP authorization, Token Audience Binding and Validation; RFC 8707 §2: the audience
    # belongs to the resource that receives the request, not to the first middleware built.
    shared = issuer.validator()
    first, second = "https://api.example.com/mcp", "https://api.example.com/admin-mcp"
    app_first = MCPAuthMiddleware(echo_app(), resource=first, authorization_servers=[ISSUER], validator=shared)
    app_second = MCPAuthMiddleware(echo_app(), resource=second, authorization_servers=[ISSUER], validator=shared)
    for_first = issuer.mint_token(audience=first)
    for_second = issuer.mint_token(audience=second)
    async with asgi_client(app_first) as a, asgi_client(app_second) as b:
        assert (await a.post("/mcp", headers=bearer(for_first))).status_code == 200  # now cached
        assert (await b.post("/mcp", headers=bearer(for_first))).status_code == 401
        assert (await b.post("/mcp", headers=bearer(for_second))).status_code == 200
        assert (await a.post("/mcp", headers=bearer(for_second))).status_code == 401
    assert shared.audience is None  # the shared object itself was never changed


# -- Validator errors map to 401/403/503, never 500 -----------------------------------------------


class RaisingValidator:
    def __init__(self, error: BaseException) -> None:
        self.error = error

    async def validate(self, token: str) -> AuthInfo:
        raise self.error


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (InvalidTokenError("Revoked"), 401),
        (InsufficientScopeError({"admin"}), 403),
        (AuthorizationServerUnavailableError(retry_after=7), 503),
        (RuntimeError("bug in a custom validator"), 503),
        (InvalidTokenError('evil"\r\nSet-Cookie: x=1'), 401),
    ],
)
async def test_validator_errors_map_to_statuses(make_app: Factory, error: BaseException, status: int) -> None:
    async with asgi_client(make_app(validator=RaisingValidator(error))) as c:
        response = await c.post("/mcp", headers=bearer("opaque-token"))
    assert response.status_code == status
    if status == 503:
        assert int(response.headers["retry-after"]) >= 1
        assert "www-authenticate" not in response.headers
    else:
        challenge = response.headers["www-authenticate"]
        assert "\r" not in challenge and "\n" not in challenge
        assert challenge.count('"') % 2 == 0
    assert "set-cookie" not in response.headers


async def test_a_bug_in_a_scope_rule_is_a_500_not_an_outage(make_app: Factory, token: str) -> None:
    # Only what a validator or the network raises is turned into an answer; a user's own bug
    # surfaces as the bug it is (RFC 9110 §15.6.1), with its traceback in the server's log.
    def broken_rule(method: str, params: Any) -> list[str]:
        raise ZeroDivisionError("a bug in the user's rule")

    app = make_app(scope_rule=broken_rule)
    transport = httpx2.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx2.AsyncClient(transport=transport, base_url="https://mcp.example.com") as c:
        response = await c.post("/mcp", headers=bearer(token), json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    assert response.status_code == 500
    with pytest.raises(ZeroDivisionError):
        async with asgi_client(app) as c:
            await c.post("/mcp", headers=bearer(token), json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})


async def test_custom_validator_plugs_in(make_app: Factory) -> None:
    class Static:
        async def validate(self, token: str) -> AuthInfo:
            if token != "letmein":
                raise InvalidTokenError()
            return AuthInfo(sub="bob", client_id="cli", scopes=frozenset({"mcp"}))

    async with asgi_client(make_app(validator=Static())) as c:
        ok = await c.get("/mcp", headers=bearer("letmein"))
        bad = await c.get("/mcp", headers=bearer("nope"))
    assert ok.json()["sub"] == "bob"
    assert bad.status_code == 401


async def test_caching_validator_asked_synchronously_first_and_token_hashed_once(make_app: Factory) -> None:
    """CachingValidator: `cached(sha256)` first; `validate_new` only for a token it does not
    know, with the key the middleware already computed; `validate` never."""
    import hashlib

    class Spy:
        def __init__(self) -> None:
            self.store: dict[bytes, AuthInfo] = {}
            self.new: list[tuple[str, bytes]] = []

        def cached(self, key: bytes) -> AuthInfo | None:
            return self.store.get(key)

        async def validate(self, token: str) -> AuthInfo:
            raise AssertionError("the middleware uses cached() and validate_new()")

        async def validate_new(self, token: str, key: bytes) -> AuthInfo:
            self.new.append((token, key))
            if token == "bad":
                raise InvalidTokenError()
            self.store[key] = info = AuthInfo(sub="spy", client_id="c", scopes=frozenset({"mcp"}))
            return info

    spy = Spy()
    async with asgi_client(make_app(validator=spy)) as c:
        statuses = [(await c.get("/mcp", headers=bearer("good-token"))).status_code for _ in range(3)]
        assert (await c.get("/mcp", headers=bearer("bad"))).status_code == 401
    assert statuses == [200, 200, 200]
    assert spy.new == [("good-token", hashlib.sha256(b"good-token").digest()), ("bad", hashlib.sha256(b"bad").digest())]


# -- AuthInfo attachment --------------------------------------------------------------------------


async def test_auth_info_attached_everywhere(client: httpx2.AsyncClient, token: str) -> None:
    response = await client.post("/mcp", headers=bearer(token))
    body = response.json()
    assert body["sub"] == "alice"
    assert body["client_id"] == "app-1"
    assert body["scopes"] == ["mcp", "read"]
    # The MCP SDK's AuthenticatedUser names the client; without the SDK, Starlette's user the subject.
    assert body["user"] == ("app-1" if importlib.util.find_spec("mcp") else "alice")
    assert body["auth_scopes"] == ["mcp", "read"]
    assert body["get_auth"] is True


async def test_raw_token_not_exposed_unless_opted_in(make_app: Factory, token: str) -> None:
    seen: list[AuthInfo] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["state"]["auth"])
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    for expose in (False, True):
        async with asgi_client(make_app(app=app, expose_token=expose)) as c:
            await c.get("/mcp", headers=bearer(token))
    assert seen[0].token is None
    assert token not in repr(seen[0])
    assert seen[1].token == token


# -- Pass-through: public paths, lifespan, streaming, websockets ----------------------------------


async def test_public_paths_skip_auth(make_app: Factory) -> None:
    async with asgi_client(make_app(public_paths=["/health", "/static/*"])) as c:
        assert (await c.get("/health")).text == "ok"
        assert (await c.get("/static/file")).text == "ok"
        assert (await c.get("/mcp")).status_code == 401


async def test_public_paths_are_relative_to_the_wrapped_app_when_mounted(issuer: LocalIssuer) -> None:
    from starlette.routing import Mount

    resource = "https://mcp.example.com/api/mcp"
    auth = MCPAuthMiddleware(
        echo_app(),
        resource=resource,
        authorization_servers=[ISSUER],
        validator=issuer.validator(),
        public_paths="/health",
    )
    outer = Starlette(routes=[*auth.well_known_routes(), Mount("/api", app=auth)])
    async with asgi_client(outer) as c:
        assert (await c.get("/api/health")).text == "ok"
        assert (await c.post("/api/mcp")).status_code == 401
        token = issuer.mint_token(audience=resource)
        assert (await c.post("/api/mcp", headers=bearer(token))).status_code == 200
        for path in ("/.well-known/oauth-protected-resource/api/mcp", "/.well-known/oauth-protected-resource"):
            document = await c.get(path, headers={"Origin": "https://evil.example"})
            assert document.json()["resource"] == resource
            assert document.headers["access-control-allow-origin"] == "*"


async def test_lifespan_passes_through(make_app: Factory) -> None:
    events: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "lifespan"
        while True:
            message = await receive()
            events.append(message["type"])
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return

    messages = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return next(messages)

    async def send(message: Any) -> None:
        sent.append(message)

    await make_app(app=app)({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send)
    assert events == ["lifespan.startup", "lifespan.shutdown"]
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


async def test_streaming_response_not_buffered(make_app: Factory, token: str) -> None:
    """Each chunk the app sends reaches the server before the app produces the next."""
    order: list[str] = []

    async def stream() -> Any:
        for i in range(3):
            order.append(f"produce {i}")
            yield f"data: {i}\n\n"

    async def sse(request: Any) -> StreamingResponse:
        return StreamingResponse(stream(), media_type="text/event-stream")

    app = make_app(app=Starlette(routes=[Route("/mcp", sse)]))

    async def send(message: Any) -> None:
        if message["type"] == "http.response.body" and message.get("body"):
            order.append("sent " + message["body"].decode().strip())

    received: list[bool] = []

    async def receive() -> dict[str, Any]:
        if received:  # after the body, wait for a disconnect that never comes
            await asyncio.Event().wait()
        received.append(True)
        return {"type": "http.request", "body": b"", "more_body": False}

    await app(http_scope((b"authorization", f"Bearer {token}".encode()), method="GET"), receive, send)
    assert order == ["produce 0", "sent data: 0", "produce 1", "sent data: 1", "produce 2", "sent data: 2"]


async def test_websocket_refused(make_app: Factory) -> None:
    sent: list[Any] = []

    async def send(message: Any) -> None:
        sent.append(message)

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    await make_app()({"type": "websocket", "path": "/mcp", "headers": []}, receive, send)
    assert sent == [{"type": "websocket.close", "code": 1008}]


async def test_usable_as_starlette_middleware(issuer: LocalIssuer, token: str) -> None:
    app = Starlette(
        routes=echo_app().routes,
        middleware=[
            Middleware(
                MCPAuthMiddleware, resource=RESOURCE, authorization_servers=[ISSUER], validator=issuer.validator()
            )
        ],
    )
    async with asgi_client(app) as c:
        assert (await c.get("/mcp")).status_code == 401
        assert (await c.get("/mcp", headers=bearer(token))).json()["sub"] == "alice"


# -- CORS for browser clients (MCP Inspector) -----------------------------------------------------

INSPECTOR = "http://localhost:6274"


@pytest.fixture
async def browser_client(make_app: Factory) -> AsyncIterator[httpx2.AsyncClient]:
    """The endpoint configured for MCP Inspector's origin, as docs/troubleshooting.md says."""
    async with asgi_client(make_app(allowed_origins=[INSPECTOR])) as c:
        yield c


async def test_preflight_answered_before_auth(browser_client: httpx2.AsyncClient) -> None:
    response = await browser_client.options(
        "/mcp",
        headers={
            "Origin": INSPECTOR,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type, mcp-protocol-version",
        },
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "*"
    assert "authorization" in response.headers["access-control-allow-headers"].lower()


async def test_challenge_and_metadata_carry_cors_headers(browser_client: httpx2.AsyncClient) -> None:
    origin = {"Origin": INSPECTOR}
    for response in (
        await browser_client.post("/mcp", headers=origin),
        await browser_client.get("/.well-known/oauth-protected-resource/mcp", headers=origin),
    ):
        assert response.headers["access-control-allow-origin"] == "*"
        exposed = response.headers["access-control-expose-headers"].lower()
        assert "www-authenticate" in exposed and "mcp-session-id" in exposed


async def test_authenticated_answer_carries_cors_headers(browser_client: httpx2.AsyncClient, token: str) -> None:
    response = await browser_client.post("/mcp", headers={"Origin": INSPECTOR, **bearer(token)})
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "*"
    assert "mcp-session-id" in response.headers["access-control-expose-headers"].lower()


async def test_cors_origins_configurable(make_app: Factory) -> None:
    app = make_app(cors_origins=["https://app.example"], allowed_origins=["https://app.example", "https://b.example"])
    async with asgi_client(app) as c:
        allowed = await c.post("/mcp", headers={"Origin": "https://app.example"})
        other = await c.post("/mcp", headers={"Origin": "https://b.example"})
    assert allowed.headers["access-control-allow-origin"] == "https://app.example"
    assert other.status_code == 401 and "access-control-allow-origin" not in other.headers


async def test_cors_off(make_app: Factory) -> None:
    async with asgi_client(make_app(cors_origins=None, allowed_origins=["https://app.example"])) as c:
        response = await c.post("/mcp", headers={"Origin": "https://app.example"})
    assert response.status_code == 401 and "access-control-allow-origin" not in response.headers


# -- Configuration --------------------------------------------------------------------------------


def test_from_env(issuer: LocalIssuer) -> None:
    env = {
        "MCP_AUTH_RESOURCE": RESOURCE,
        "MCP_AUTH_ISSUER": ISSUER,
        "MCP_AUTH_JWKS_URI": "https://auth.example.com/jwks",
        "MCP_AUTH_REQUIRED_SCOPES": "mcp read",
        "MCP_AUTH_PUBLIC_PATHS": "/health,/metrics",
        "MCP_AUTH_CORS_ORIGINS": "",
        "MCP_AUTH_LOG_ALLOWED": "true",
    }
    app = MCPAuthMiddleware.from_env(echo_app(), env)
    assert app.required_scopes == {"mcp", "read"}
    assert app.metadata.document["authorization_servers"] == [ISSUER]
    assert app.config.browsers.cors_origins is None  # an empty variable turns CORS off
    assert app.log_allowed is True
    assert MCPAuthMiddleware.from_env(echo_app(), {**env, "MCP_AUTH_LOG_ALLOWED": "0"}).log_allowed is False
    with pytest.raises(ValueError, match="MCP_AUTH_RESOURCE"):
        MCPAuthMiddleware.from_env(echo_app(), {})


def test_configured_scope_must_be_a_scope_token() -> None:
    with pytest.raises(ValueError, match="scope"):
        MCPAuthMiddleware(
            echo_app(),
            resource=RESOURCE,
            authorization_servers=[ISSUER],
            validator=LocalIssuer().validator(),
            required_scopes=['bad"scope'],
        )


# -- Logging (MCP authorization, Token Handling) --------------------------------------------------


@pytest.mark.parametrize("log_allowed", [True, False])
async def test_decisions_logged_without_token(
    make_app: Factory, token: str, caplog: pytest.LogCaptureFixture, log_allowed: bool
) -> None:
    caplog.set_level(logging.DEBUG, logger="mcp_auth_middleware")
    async with asgi_client(make_app(log_allowed=log_allowed)) as client:
        await client.post("/mcp", headers=bearer(token))
        await client.post("/mcp", headers=bearer(token + "x"))
    outcomes = [getattr(r, "auth_outcome", None) for r in caplog.records]
    assert "deny" in outcomes
    assert ("allow" in outcomes) is log_allowed  # allowed requests are logged only on request
    for record in caplog.records:
        text = record.getMessage() + json.dumps({k: str(v) for k, v in record.__dict__.items()})
        assert token[:40] not in text and token[-16:] not in text


def denial_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "auth_outcome", None) in ("deny", "challenge")]


async def test_each_denial_is_one_line_with_its_reason_in_words(
    make_app: Factory, issuer: LocalIssuer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="mcp_auth_middleware")
    expired = issuer.mint_token(audience=RESOURCE, expires_in=-300)
    elsewhere = issuer.mint_token(audience=["https://a.example/mcp", "https://b.example/mcp"])
    foreign = LocalIssuer("https://evil.example").mint_token(audience=RESOURCE)
    narrow = issuer.mint_token(audience=RESOURCE, scopes=["mcp"])
    app = make_app(tool_scopes={"delete_notes": ["notes:delete"]})
    async with asgi_client(app) as client:
        await client.post("/mcp")
        for token in (expired, elsewhere, foreign):
            await client.post("/mcp", headers=bearer(token))
        call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "delete_notes"}}
        await client.post("/mcp", headers=bearer(narrow), json=call)
    no_token, expired_line, audience_line, key_line, scope_line = denial_lines(caplog)
    assert no_token.levelno == logging.DEBUG and "no bearer token" in no_token.getMessage()
    assert expired_line.levelno == logging.INFO
    assert "The access token has expired: expired at " in expired_line.getMessage()
    assert audience_line.levelno == logging.WARNING  # configuration-shaped: shown under plain uvicorn
    assert (
        "audience ['https://a.example/mcp', 'https://b.example/mcp'] does not include https://mcp.example.com/mcp"
        in audience_line.getMessage()
    )
    assert key_line.levelno == logging.WARNING and "no RSA key with key id" in key_line.getMessage()
    assert "scope notes:delete missing for tools/call delete_notes" in scope_line.getMessage()
    for line in (expired_line, audience_line, key_line, scope_line):
        assert line.auth_token_hash and line.auth_client_address == "127.0.0.1"  # type: ignore[attr-defined]
        assert f"(token {line.auth_token_hash}, client 127.0.0.1)" in line.getMessage()  # type: ignore[attr-defined]


async def test_challenge_description_names_the_check_without_claim_values(
    client: httpx2.AsyncClient, issuer: LocalIssuer
) -> None:
    token = issuer.mint_token(audience="https://attacker-chosen.example/mcp")
    challenge = (await client.post("/mcp", headers=bearer(token))).headers["www-authenticate"]
    assert 'error_description="The access token was not issued for this resource"' in challenge
    assert "attacker-chosen" not in challenge


async def test_a_host_other_than_the_resource_is_logged_once(
    make_app: Factory, caplog: pytest.LogCaptureFixture
) -> None:
    async with httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=make_app()), base_url="https://localhost:8443"
    ) as client:
        for _ in range(3):
            await client.post("/mcp")
    lines = [r for r in caplog.records if "arrive for host" in r.getMessage()]
    assert len(lines) == 1 and lines[0].levelno == logging.WARNING
    assert "'localhost:8443'" in lines[0].getMessage() and RESOURCE in lines[0].getMessage()


# -- Origin validation (MCP Streamable HTTP transport, Security Warning; on by default) -----------


async def test_origin_validated_by_default(client: httpx2.AsyncClient, token: str) -> None:
    evil = await client.post("/mcp", headers={**bearer(token), "Origin": "https://evil.example"})
    assert evil.status_code == 403
    assert evil.json()["error"] == "forbidden_origin"
    assert "www-authenticate" not in evil.headers  # not a challenge: no token helps
    for same in ("https://mcp.example.com", "HTTPS://MCP.example.com:443"):  # the resource's own origin
        assert (await client.post("/mcp", headers={**bearer(token), "Origin": same})).status_code == 200
    assert (await client.post("/mcp", headers=bearer(token))).status_code == 200  # non-browser: no Origin


@pytest.mark.parametrize(
    "origin", ["http://localhost:6274", "http://127.0.0.1", "null", "https://mcp.example.com.evil"]
)
async def test_loopback_origins_refused_for_a_public_resource(
    client: httpx2.AsyncClient, token: str, origin: str
) -> None:
    response = await client.post("/mcp", headers={**bearer(token), "Origin": origin})
    assert response.status_code == 403


async def test_loopback_resource_accepts_loopback_origins(issuer: LocalIssuer) -> None:
    resource = "http://127.0.0.1:8000/mcp"
    app = MCPAuthMiddleware(echo_app(), resource=resource, authorization_servers=[ISSUER], validator=issuer.validator())
    token = issuer.mint_token(audience=resource)
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://127.0.0.1:8000") as c:
        for origin in ("http://localhost:6274", "http://127.0.0.1:8000", "http://[::1]:3000"):
            assert (await c.post("/mcp", headers={**bearer(token), "Origin": origin})).status_code == 200
        evil = await c.post("/mcp", headers={**bearer(token), "Origin": "http://attacker.example"})
    assert evil.status_code == 403


async def test_refused_before_the_app_and_before_public_paths(make_app: Factory) -> None:
    reached: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        reached.append(scope["path"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async with asgi_client(make_app(app=app, public_paths=["/health"])) as c:
        assert (await c.get("/health", headers={"Origin": "https://evil.example"})).status_code == 403
        preflight = await c.options(
            "/mcp", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
        )
        # Answered by us (so that the request itself gets a readable 403), never by the app.
        assert preflight.status_code == 204 and preflight.headers["access-control-allow-origin"] == "*"
    assert reached == []


async def test_metadata_readable_from_any_origin(client: httpx2.AsyncClient) -> None:
    response = await client.get("/.well-known/oauth-protected-resource/mcp", headers={"Origin": "https://evil.example"})
    assert response.status_code == 200 and response.headers["access-control-allow-origin"] == "*"


async def test_allowed_origins_widens(make_app: Factory, token: str) -> None:
    app = make_app(allowed_origins=["https://app.example/"], cors_origins=["https://app.example"])
    async with asgi_client(app) as c:
        evil = await c.post("/mcp", headers={**bearer(token), "Origin": "https://evil.example"})
        good = await c.post("/mcp", headers={**bearer(token), "Origin": "https://app.example"})
    assert evil.status_code == 403
    assert good.status_code == 200 and good.headers["access-control-allow-origin"] == "https://app.example"


async def test_two_origin_headers_refused(client: httpx2.AsyncClient, token: str) -> None:
    headers = [("authorization", f"Bearer {token}"), ("origin", "https://mcp.example.com"), ("origin", "https://e.x")]
    assert (await client.post("/mcp", headers=headers)).status_code == 403


async def test_origin_validation_off_only_with_a_warning(
    make_app: Factory, token: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="mcp_auth_middleware"):
        app = make_app(allowed_origins="*")
    assert any("Origin validation is off" in r.getMessage() for r in caplog.records)
    async with asgi_client(app) as c:
        response = await c.post("/mcp", headers={**bearer(token), "Origin": "https://anything.example"})
    assert response.status_code == 200


# -- Input limits ---------------------------------------------------------------------------------


async def test_too_many_headers_400(client: httpx2.AsyncClient, token: str) -> None:
    headers = [("Authorization", f"Bearer {token}")] + [(f"x-h{i}", "v") for i in range(250)]
    response = await client.post("/mcp", headers=headers)
    assert response.status_code == 400
    assert 'error="invalid_request"' in response.headers["www-authenticate"]


async def test_overlong_token_401(make_app: Factory) -> None:
    async with asgi_client(make_app(max_token_length=100)) as c:
        response = await c.post("/mcp", headers=bearer("a" * 101))
    assert response.status_code == 401
    assert "a" * 101 not in response.text


async def test_a_refused_origin_is_told_why_and_the_operator_too(
    client: httpx2.AsyncClient, token: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A browser page (MCP Inspector at http://localhost:6274) refused for its Origin: the
    preflight passes and the 403 is readable by that page, so its console shows the JSON
    instead of a bare network error; the log says it once per origin at WARNING (plain
    uvicorn shows no INFO), naming the option that admits it."""
    inspector = "http://localhost:6274"
    preflight = await client.options(
        "/mcp",
        headers={"Origin": inspector, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "x"},
    )
    assert preflight.status_code == 204 and preflight.headers["access-control-allow-origin"] == "*"
    for _ in range(3):
        refused = await client.post("/mcp", headers={**bearer(token), "Origin": inspector})
        assert refused.status_code == 403 and refused.headers["access-control-allow-origin"] == "*"
        assert refused.json() == {
            "error": "forbidden_origin",
            "error_description": "This Origin is not allowed: the server's log names the option that admits it "
            "(allowed_origins)",
        }
    await client.post("/mcp", headers={**bearer(token), "Origin": "https://other.example"})
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "Origin" in r.getMessage()]
    assert len(warnings) == 2  # once per origin
    assert "Origin 'http://localhost:6274' is not allowed" in warnings[0]
    assert "add it to allowed_origins (MCP_AUTH_ALLOWED_ORIGINS)" in warnings[0]
    assert "refused origins are" not in warnings[0]


@pytest.mark.parametrize(
    "path",
    [
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server/mcp",
        "/mcp/.well-known/openid-configuration",
    ],
)
async def test_an_authorization_servers_metadata_asked_of_the_resource_is_a_plain_404(
    issuer: LocalIssuer, path: str
) -> None:
    """MCP Inspector 1.x probes these on the MCP server: a 401 challenge there reads as a failed
    sign-in. RFC 9728: the resource's own metadata names the authorization server."""
    app = MCPAuthMiddleware(echo_app(), resource=RESOURCE, authorization_servers=[ISSUER], validator=issuer.validator())
    token = issuer.mint_token(audience=RESOURCE, scopes=["mcp"])
    async with asgi_client(app) as client:
        probe = await client.get(path)
        with_token = await client.get(path, headers=bearer(token))
        mcp = await client.post("/mcp", json={})
    assert probe.status_code == 404 and "www-authenticate" not in probe.headers
    assert "not an authorization server" in probe.json()["error_description"]
    assert "not an authorization server" not in with_token.text  # authenticated: the app's to answer
    assert mcp.status_code == 401


async def test_a_tool_only_people_or_only_machines_may_call(issuer: LocalIssuer) -> None:
    """`tool_callers`: a client acting for itself (client credentials: `sub` is the client, RFC
    9068 §2.2) is a machine; `AuthInfo.is_machine` says so, and the rule decides per tool."""
    app = MCPAuthMiddleware(
        echo_app(),
        resource=RESOURCE,
        authorization_servers=[ISSUER],
        validator=issuer.validator(),
        tool_callers={"delete_account": "users", "nightly_sync": "machines"},
    )
    person = issuer.mint_token(audience=RESOURCE, sub="alice", client_id="claude", scopes=["mcp"])
    machine = issuer.mint_token(audience=RESOURCE, sub="batch-job", client_id="batch-job", scopes=["mcp"])

    def call(tool: str) -> dict[str, Any]:
        return {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": tool, "arguments": {}}}

    async with asgi_client(app) as client:
        answers = {
            (who, tool): await client.post("/mcp", json=call(tool), headers=bearer(token))
            for who, token in (("person", person), ("machine", machine))
            for tool in ("delete_account", "nightly_sync", "whoami")
        }
    assert answers["person", "delete_account"].status_code == 200
    assert answers["machine", "nightly_sync"].status_code == 200
    assert answers["person", "whoami"].status_code == answers["machine", "whoami"].status_code == 200
    refused = answers["machine", "delete_account"]
    assert refused.status_code == 403 and 'error="insufficient_scope"' in refused.headers["www-authenticate"]
    assert "Only a person's client may call this tool" in refused.headers["www-authenticate"]
    assert answers["person", "nightly_sync"].status_code == 403
    with pytest.raises(ValueError, match="tool_callers: 'x' must be 'users' or 'machines'"):
        MCPAuthMiddleware(echo_app(), resource=RESOURCE, issuer=ISSUER, tool_callers={"x": "robots"})
