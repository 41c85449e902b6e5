"""TokenExchange against the local authorization server's token-exchange grant: the request as
RFC 8693 §2.1 has it, the answer checked (§2.2.1), refusals typed (§2.2.2), an unreachable
server told apart, the cache and its single flight, and where the caller's token may go."""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Callable
from typing import Any

import httpx2
import pytest
from joserfc import jwt
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mcp_auth_middleware import AuthInfo
from mcp_auth_middleware.exchange import (
    Downstream,
    ExchangeRefusedError,
    ExchangeResponseError,
    ExchangeUnavailableError,
    InvalidClientError,
    InvalidGrantError,
    InvalidScopeError,
    InvalidTargetError,
    NoCallerError,
    TokenExchange,
    TokenExchangeGrant,
    UnauthorizedClientError,
)
from mcp_auth_middleware.server import LocalAuthorizationServer
from mcp_auth_middleware.testing import free_port

from ..conftest import asgi_client, bearer
from .conftest import AS_ISSUER, MCP, SECRET, TICKETS, Recorder, api_client, downstream_api, mcp_server

Make = Callable[..., TokenExchange]


def user_token(auth_server: LocalAuthorizationServer, **options: Any) -> str:
    options.setdefault("scopes", ["mcp", "tickets:read"])
    return auth_server.mint_token(sub="alice", audience=MCP, client_id="claude", **options)


def caller(token: str, expires_at: int | None = None) -> AuthInfo:
    """The caller as the middleware would attach it, with the token kept (expose_token=True)."""
    return AuthInfo("alice", "claude", frozenset({"mcp"}), expires_at=expires_at, token=token)


async def test_a_tool_gets_a_token_for_the_downstream_api_in_one_call(
    auth_server: LocalAuthorizationServer, recorder: Recorder, make_exchange: Make
) -> None:
    exchange = make_exchange()
    token = user_token(auth_server)

    async def tool(request: Request) -> Any:
        return {"token": await exchange.token(request, "tickets")}

    async with asgi_client(mcp_server(auth_server, tool)) as client:
        answer = await client.post("/mcp", headers=bearer(token))
    issued = answer.json()["token"]
    claims = jwt.decode(issued, auth_server.key).claims
    # The user stays the subject; the MCP server is the actor (RFC 8693 §4.1); the audience is
    # the downstream API, never the MCP server; the scope is what was asked.
    assert claims["sub"] == "alice" and claims["act"] == {"sub": "mcp-server"}
    assert claims["aud"] == TICKETS and claims["scope"] == "tickets:read" and claims["client_id"] == "mcp-server"
    # RFC 8693 §2.1, to the letter, in the form body; the client authenticates (basic).
    form, headers, query = recorder.requests[0]
    assert form == {
        "grant_type": ["urn:ietf:params:oauth:grant-type:token-exchange"],
        "subject_token": [token],
        "subject_token_type": ["urn:ietf:params:oauth:token-type:access_token"],
        "requested_token_type": ["urn:ietf:params:oauth:token-type:access_token"],
        "resource": [TICKETS],
        "scope": ["tickets:read"],
    }
    assert headers["authorization"] == "Basic " + base64.b64encode(f"mcp-server:{SECRET}".encode()).decode()
    assert query == ""  # never in the URL


async def test_the_downstream_sees_the_user_and_the_actor_and_refuses_the_original_token(
    auth_server: LocalAuthorizationServer, make_exchange: Make
) -> None:
    exchange = make_exchange()
    token = user_token(auth_server)
    async with api_client(downstream_api(auth_server)) as api:
        exchanged = await api.get("/api", auth=exchange.auth(caller(token), "tickets"))
        original = await api.get("/api", headers=bearer(token))
    assert exchanged.status_code == 200
    assert exchanged.json() == {
        "sub": "alice",
        "actors": ["mcp-server"],
        "client_id": "mcp-server",
        "scopes": ["tickets:read"],
    }
    assert original.status_code == 401  # its audience is the MCP server (RFC 8707)
    assert 'error="invalid_token"' in original.headers["www-authenticate"]


async def test_an_exchanged_token_exchanged_again_keeps_the_whole_actor_chain(
    auth_server: LocalAuthorizationServer, make_exchange: Make
) -> None:
    auth_server.register_client(client_id="tickets", client_secret="t", grant_types=["client_credentials"])
    auth_server.allow_token_exchange("tickets", from_resources=[TICKETS], to_resources=["https://db.example.com"])
    first = await make_exchange().token(caller(user_token(auth_server)), "tickets")
    second = await make_exchange(client_id="tickets", client_secret="t").token(caller(first), "https://db.example.com")
    claims = jwt.decode(second, auth_server.key).claims
    assert claims["sub"] == "alice" and claims["act"] == {"sub": "tickets", "act": {"sub": "mcp-server"}}
    info = AuthInfo("alice", "tickets", frozenset(), claims=claims)
    assert info.actors == ("tickets", "mcp-server")  # the current actor first


async def test_concurrent_calls_share_one_exchange_and_later_ones_hit_the_cache(
    auth_server: LocalAuthorizationServer, recorder: Recorder, make_exchange: Make
) -> None:
    exchange = make_exchange()
    info = caller(user_token(auth_server, scopes=["mcp", "tickets:read", "tickets:write"]))
    tokens = await asyncio.gather(*(exchange.token(info, "tickets") for _ in range(50)))
    assert len(set(tokens)) == 1 and len(recorder.requests) == 1
    assert await exchange.token(info, "tickets") == tokens[0] and len(recorder.requests) == 1
    # Another scope, another target or another caller is another exchange.
    await exchange.token(info, "tickets", scopes=["tickets:write"])
    await exchange.token(caller(user_token(auth_server)), "tickets")
    assert len(recorder.requests) == 3


async def test_cached_until_shortly_before_expiry_and_never_past_the_callers_token(
    auth_server: LocalAuthorizationServer, recorder: Recorder, make_exchange: Make
) -> None:
    auth_server.access_token_ttl = 4  # the exchanged token's lifetime
    exchange = make_exchange()
    info = caller(user_token(auth_server, expires_in=3600))
    first = await exchange.exchange(info, "tickets")
    assert first.expires_at is not None
    await exchange.token(info, "tickets")
    assert len(recorder.requests) == 1
    await asyncio.sleep(3.2)  # within the last quarter of its life: exchanged again
    assert await exchange.token(info, "tickets") != first.access_token and len(recorder.requests) == 2
    # A caller token about to expire: the exchanged token lives no longer (the AS), and the
    # cache keeps it no longer than the caller's own token.
    auth_server.access_token_ttl = 3600
    short = user_token(auth_server, expires_in=2)
    expiring = caller(short, expires_at=int(jwt.decode(short, auth_server.key).claims["exp"]))
    await exchange.token(expiring, "tickets")
    await asyncio.sleep(2.2)
    with pytest.raises(InvalidGrantError):  # asked again, and refused: the caller's token has expired
        await exchange.token(expiring, "tickets")


@pytest.mark.parametrize(
    ("setup", "error", "code"),
    [
        (lambda s: {"downstream": "https://other.example.com/api"}, InvalidTargetError, "invalid_target"),
        (lambda s: {"scopes": ["tickets:write", "admin"]}, InvalidScopeError, "invalid_scope"),
        (lambda s: {"revoke": True}, InvalidGrantError, "invalid_grant"),
        (lambda s: {"client_secret": "wrong"}, InvalidClientError, "invalid_client"),
        (lambda s: {"client_id": "no-policy"}, UnauthorizedClientError, "unauthorized_client"),
    ],
)
async def test_refusals_are_typed_and_say_nothing_of_the_token(
    auth_server: LocalAuthorizationServer,
    make_exchange: Make,
    caplog: pytest.LogCaptureFixture,
    setup: Callable[[LocalAuthorizationServer], dict[str, Any]],
    error: type[ExchangeRefusedError],
    code: str,
) -> None:
    auth_server.register_client(client_id="no-policy", client_secret=SECRET, grant_types=["client_credentials"])
    case = setup(auth_server)
    token = user_token(auth_server)
    if case.pop("revoke", False):
        auth_server.revoke_tokens([token])
    downstream, scopes = case.pop("downstream", "tickets"), case.pop("scopes", None)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(error) as raised:
        await make_exchange(**case).token(caller(token), downstream, scopes=scopes)
    assert raised.value.error == code and isinstance(raised.value, ExchangeRefusedError)
    if code == "invalid_scope":  # the caller's AuthInfo holds mcp alone: the likely fix is said
        assert "the caller's token lacks admin tickets:write: name it in tool_scopes" in str(raised.value)
    assert token not in str(raised.value) and token not in caplog.text
    assert f"token exchange for {downstream} refused: {code}" in caplog.text


async def test_an_unreachable_server_is_not_a_refusal(auth_server: LocalAuthorizationServer) -> None:
    info = caller(user_token(auth_server))
    nowhere = TokenExchange(
        client_id="mcp-server", client_secret=SECRET, token_endpoint=f"http://127.0.0.1:{free_port()}/token"
    )
    with pytest.raises(ExchangeUnavailableError, match="could not connect"):
        await nowhere.token(info, TICKETS)


def answering(status: int, body: Any, headers: dict[str, str] | None = None) -> Starlette:
    """A token endpoint that answers every request the same way."""

    async def token(request: Request) -> Response:
        if isinstance(body, str):
            return Response(body, status, headers, media_type="text/html")
        return JSONResponse(body, status, headers)

    return Starlette(routes=[Route("/token", token, methods=["POST"])])


GOOD = {"access_token": "downstream-token", "token_type": "Bearer", "expires_in": 300}
ISSUED = {"issued_token_type": "urn:ietf:params:oauth:token-type:access_token"}


@pytest.mark.parametrize(
    ("status", "body", "headers", "error", "says"),
    [
        (503, {"error": "temporarily_unavailable"}, {"retry-after": "7"}, ExchangeUnavailableError, "HTTP 503"),
        (429, {}, None, ExchangeUnavailableError, "HTTP 429"),
        (200, "<html>login</html>", None, ExchangeResponseError, "HTML page"),
        (404, {"detail": "not found"}, None, ExchangeResponseError, "not an OAuth error"),
        (200, GOOD, None, ExchangeResponseError, "no issued_token_type"),
        (200, {**GOOD, **ISSUED, "token_type": "N_A"}, None, ExchangeResponseError, "not Bearer or DPoP"),
        (200, {**GOOD, **ISSUED, "token_type": "DPoP"}, None, ExchangeResponseError, "no DPoP key"),
        (
            200,
            {**GOOD, "issued_token_type": "urn:ietf:params:oauth:token-type:id_token"},
            None,
            ExchangeResponseError,
            "not an access token",
        ),
        (200, {**ISSUED, "token_type": "Bearer"}, None, ExchangeResponseError, "no access_token"),
        (200, {**GOOD, **ISSUED, "expires_in": -5}, None, ExchangeResponseError, "expires_in"),
        (
            400,
            {"error": "invalid_request", "error_description": "nope"},
            None,
            ExchangeRefusedError,
            "invalid_request: nope",
        ),
    ],
)
async def test_answers_outside_the_protocol_are_told_apart(
    make_exchange: Make,
    auth_server: LocalAuthorizationServer,
    status: int,
    body: Any,
    headers: dict[str, str] | None,
    error: type[Exception],
    says: str,
) -> None:
    exchange = make_exchange(as_app=answering(status, body, headers))
    with pytest.raises(error, match=says) as raised:
        await exchange.token(caller(user_token(auth_server)), "tickets")
    if status == 503:
        assert isinstance(raised.value, ExchangeUnavailableError) and raised.value.retry_after == 7


async def test_a_good_answer_without_optional_members(
    make_exchange: Make, auth_server: LocalAuthorizationServer
) -> None:
    exchange = make_exchange(as_app=answering(200, {"access_token": "t", "token_type": "bearer", **ISSUED}))
    token = await exchange.exchange(caller(user_token(auth_server)), "tickets")
    # RFC 8693 §2.2.1: scope may be left out when it is the one asked; expires_in is only
    # recommended (kept lifetime_without_expiry, 60 s by default).
    assert token.scopes == {"tickets:read"} and token.expires_at is None and token.token_type == "Bearer"


async def test_without_an_authenticated_caller_there_is_nothing_to_exchange(make_exchange: Make) -> None:
    exchange = make_exchange()
    with pytest.raises(NoCallerError, match="holds no token"):
        await exchange.token(AuthInfo("alice", None, frozenset()), "tickets")

    async def unprotected(request: Request) -> JSONResponse:
        with pytest.raises(NoCallerError, match="no caller authenticated"):
            await exchange.token(request, "tickets")
        return JSONResponse({})

    async with asgi_client(Starlette(routes=[Route("/", unprotected)])) as client:
        assert (await client.get("/", headers=bearer("stolen"))).status_code == 200
    with pytest.raises(ValueError, match="no downstream named 'ticket'"):
        exchange.auth(AuthInfo("a", None, frozenset(), token="t"), "ticket")


async def test_the_token_endpoint_is_discovered_from_the_issuer(
    auth_server: LocalAuthorizationServer, recorder: Recorder, make_exchange: Make
) -> None:
    exchange = make_exchange(issuer=AS_ISSUER)
    await exchange.check()
    assert exchange.token_endpoint == f"{AS_ISSUER}/token"
    assert await exchange.token(caller(user_token(auth_server)), "tickets")


def test_configuration_mistakes_are_said_at_construction() -> None:
    with pytest.raises(ValueError, match=r"issuer= .* or token_endpoint="):
        TokenExchange(client_id="x", client_secret="s")
    with pytest.raises(ValueError, match="client_secret_basic needs client_secret="):
        TokenExchange(client_id="x", issuer=AS_ISSUER)
    with pytest.raises(ValueError, match="only https"):
        TokenExchange(client_id="x", client_secret="s", token_endpoint="ftp://as.example.com/token")
    with pytest.raises(ValueError, match="plain http"):
        TokenExchange(client_id="x", client_secret="s", token_endpoint="http://as.example.com/token")
    with pytest.raises(ValueError, match="must be redis://, rediss:// or valkey://, not memcached://"):
        TokenExchange(client_id="x", client_secret="s", issuer=AS_ISSUER, cache_storage="memcached://cache:11211")
    with pytest.raises(ValueError, match="Downstream needs"):
        Downstream()
    with pytest.raises(ValueError, match="must be a Downstream"):
        TokenExchange(client_id="x", client_secret="s", issuer=AS_ISSUER, downstreams={"t": TICKETS})  # type: ignore[dict-item]


async def test_a_downstream_that_says_invalid_token_gets_one_new_exchange(
    auth_server: LocalAuthorizationServer, recorder: Recorder, make_exchange: Make
) -> None:
    # The downstream introspects (so it sees a revocation at once).
    from mcp_auth_middleware import IntrospectionValidator

    auth_server.register_resource_server("tickets-api", "t", [TICKETS])
    introspection = IntrospectionValidator(
        f"{AS_ISSUER}/introspect",
        client_id="tickets-api",
        client_secret="t",
        cache_ttl=0,
        http_client=httpx2.AsyncClient(transport=httpx2.ASGITransport(app=auth_server.app)),
    )
    exchange = make_exchange()
    info = caller(user_token(auth_server))
    async with api_client(downstream_api(auth_server, validator=introspection)) as api:
        auth = exchange.auth(info, "tickets")
        assert (await api.get("/api", auth=auth)).status_code == 200
        auth_server.revoke_tokens([await exchange.token(info, "tickets")])
        assert (await api.get("/api", auth=auth)).status_code == 200  # exchanged once more
    assert len(recorder.requests) == 2


async def test_a_subject_token_type_of_ones_own(
    auth_server: LocalAuthorizationServer, recorder: Recorder, make_exchange: Make
) -> None:
    # Auth0's Custom Token Exchange names the subject token by a type of your own; ours refuses it.
    exchange = make_exchange(grant=TokenExchangeGrant("urn:acme:mcp-access-token"))
    with pytest.raises(ExchangeRefusedError, match="invalid_request: Only access tokens are exchanged here"):
        await exchange.token(caller(user_token(auth_server)), "tickets")
    assert recorder.requests[0][0]["subject_token_type"] == ["urn:acme:mcp-access-token"]


async def test_check_says_what_an_exchange_would(make_exchange: Make) -> None:
    with pytest.raises(ExchangeResponseError, match="differ only in a trailing slash"):
        await make_exchange(issuer=f"{AS_ISSUER}/").check()
    nowhere = TokenExchange(client_id="x", client_secret="s", issuer=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(ExchangeUnavailableError, match="is the server running"):
        await nowhere.check()


def echoing(status: int, describe: Callable[[dict[str, str]], dict[str, Any]]) -> Starlette:
    """A token endpoint whose error answer quotes what it was sent."""

    async def token(request: Request) -> Response:
        form = {key: str(value) for key, value in (await request.form()).items()}
        return JSONResponse(describe(form), status)

    return Starlette(routes=[Route("/token", token, methods=["POST"])])


@pytest.mark.parametrize(
    "describe",
    [
        lambda form: {"error": "invalid_grant", "error_description": f"bad subject_token {form['subject_token']}"},
        lambda form: {"error": "invalid_grant", "error_description": f"{form['subject_token'][:250]}... is expired"},
        lambda form: {"error": "invalid_grant", "error_description": "bad", "claims": form["subject_token"]},
        lambda form: {"error": "invalid_grant", "error_description": f"token {form['subject_token'][::-1]} unknown"},
    ],
    ids=["whole", "cut", "in-extra", "token-shaped"],
)
async def test_a_refusal_that_quotes_the_callers_token_carries_none_of_it(
    make_exchange: Make,
    auth_server: LocalAuthorizationServer,
    caplog: pytest.LogCaptureFixture,
    describe: Callable[[dict[str, str]], dict[str, Any]],
) -> None:
    """An authorization server may echo the subject token in its error: it must not reach the
    exception (which FastMCP shows the client), its members or the log line."""
    token = user_token(auth_server)
    caplog.set_level(logging.DEBUG)
    exchange = make_exchange(as_app=echoing(400, describe))
    with pytest.raises(InvalidGrantError) as raised:
        await exchange.token(caller(token), "tickets")
    error = raised.value
    said = " ".join([str(error), str(error.error_description), repr(error.extra), caplog.text])
    header_and_payload = token.rsplit(".", 1)[0]
    for secret in (token, header_and_payload, token.split(".")[1], token[::-1][:40]):
        assert secret not in said
    assert "[token]" in said


async def test_an_entra_invalid_grant_that_asks_for_consent_is_interaction_required(
    make_exchange: Make, auth_server: LocalAuthorizationServer
) -> None:
    from mcp_auth_middleware.exchange import InteractionRequiredError

    answer = {
        "error": "invalid_grant",
        "error_description": "AADSTS65001: The user or administrator has not consented. Trace ID: "
        "0a1b2c3d-1111-2222-3333-444455556666",
        "suberror": "consent_required",
        "claims": '{"access_token":{"capolids":{"essential":true,"values":["p1"]}}}',
    }
    exchange = make_exchange(as_app=answering(400, answer))
    with pytest.raises(InteractionRequiredError) as raised:
        await exchange.token(caller(user_token(auth_server)), "tickets")
    assert raised.value.extra["claims"] == answer["claims"]
    assert "0a1b2c3d-1111-2222-3333-444455556666" in str(raised.value)  # trace ids are kept for support
