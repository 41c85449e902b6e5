"""ExchangeAuth and the header helper: the exchanged token presented on each request; a
DPoP-bound one (RFC 9449 §5) with a fresh proof per request, and the nonces that the
authorization server and the API ask for (§8, §9)."""

from __future__ import annotations

import httpx2
import pytest
from joserfc import jwt
from starlette.requests import Request

from mcp_auth_middleware.exchange import Downstream
from mcp_auth_middleware.server import LocalAuthorizationServer

from ..conftest import asgi_client
from .conftest import MCP, TICKETS, Recorder, api_client, downstream_api, mcp_server
from .test_client import Make, caller, user_token


async def test_a_dpop_bound_result_is_presented_with_a_proof_per_request(
    auth_server: LocalAuthorizationServer, recorder: Recorder, make_exchange: Make
) -> None:
    exchange = make_exchange(dpop=True)
    assert exchange.proofs is not None
    info = caller(user_token(auth_server))
    api = downstream_api(auth_server, dpop=True)
    async with api_client(api) as client:
        auth = exchange.auth(info, "tickets")
        answers = [await client.get("/api", auth=auth) for _ in range(3)]  # each proof is used once
        bearer = await client.get("/api", headers={"authorization": f"Bearer {await exchange.token(info, 'tickets')}"})
    assert [a.status_code for a in answers] == [200, 200, 200] and len(recorder.requests) == 1
    token = await exchange.exchange(info, "tickets")
    assert token.token_type == "DPoP"
    assert jwt.decode(token.access_token, auth_server.key).claims["cnf"] == {"jkt": exchange.proofs.thumbprint}
    assert "dpop" in recorder.requests[0][1]  # the token request carried a proof (RFC 9449 §5)
    assert bearer.status_code == 401  # a bound token is never a bearer token (RFC 9449 §7.2)


async def test_nonces_from_the_authorization_server_and_the_api_are_sent_back(make_exchange: Make) -> None:
    server = LocalAuthorizationServer(
        "https://auth.example.com", scopes_supported=["mcp", "tickets:read"], dpop_nonces=True
    )
    server.register_client(client_id="mcp-server", client_secret="the-mcp-servers-secret", grant_types=[])
    server.allow_token_exchange("mcp-server", from_resources=[MCP], to_resources=[TICKETS])
    recorder = Recorder(server.app)
    exchange = make_exchange(dpop=True, as_app=recorder)
    info = caller(user_token(server))
    async with api_client(downstream_api(server, dpop=True, dpop_nonces=True)) as client:
        answer = await client.get("/api", auth=exchange.auth(info, "tickets"))
    assert answer.status_code == 200
    assert len(recorder.requests) == 2  # use_dpop_nonce, then with the nonce


async def test_headers_for_a_client_of_ones_own(auth_server: LocalAuthorizationServer, make_exchange: Make) -> None:
    bearer_exchange, bound_exchange = make_exchange(), make_exchange(dpop=True)
    info = caller(user_token(auth_server))
    headers = await bearer_exchange.headers(info, "tickets")
    assert list(headers) == ["Authorization"] and headers["Authorization"].startswith("Bearer ")
    with pytest.raises(ValueError, match="needs the request's method and url"):
        await bound_exchange.headers(info, "tickets")
    bound = await bound_exchange.headers(info, "tickets", method="GET", url=f"{TICKETS}?page=2")
    assert bound["Authorization"].startswith("DPoP ")
    claims = jwt.decode(bound["DPoP"], bound_exchange.proofs.key).claims  # type: ignore[union-attr]
    assert claims["htm"] == "GET" and claims["htu"] == TICKETS and "ath" in claims  # no query (RFC 9449 §4.2)
    async with api_client(downstream_api(auth_server, dpop=True)) as client:
        assert (
            await client.get("/api", headers=await bound_exchange.headers(info, "tickets", url=f"{TICKETS}"))
        ).status_code == 200


async def test_the_auth_is_for_async_clients_and_names_no_token(
    auth_server: LocalAuthorizationServer, make_exchange: Make
) -> None:
    token = user_token(auth_server)
    auth = make_exchange().auth(caller(token), "tickets")
    assert token not in repr(auth) and repr(auth) == "ExchangeAuth('tickets')"
    with (
        httpx2.Client(transport=httpx2.MockTransport(lambda r: httpx2.Response(200))) as client,
        pytest.raises(RuntimeError, match=r"use it with httpx2\.AsyncClient"),
    ):
        client.get("https://tickets.example.com/api", auth=auth)


async def test_other_downstreams_by_resource_uri_and_audience(
    auth_server: LocalAuthorizationServer, recorder: Recorder, make_exchange: Make
) -> None:
    auth_server.allow_token_exchange(
        "mcp-server", from_resources=[MCP], to_resources=[TICKETS, "tickets-api"], scopes=["tickets:read"]
    )
    exchange = make_exchange(downstreams={"by-audience": Downstream(audience="tickets-api", scopes="tickets:read")})
    info = caller(user_token(auth_server))
    by_uri = await exchange.token(info, TICKETS)  # a resource URI needs no configuration
    by_audience = await exchange.token(info, "by-audience")
    assert jwt.decode(by_uri, auth_server.key).claims["aud"] == TICKETS
    assert jwt.decode(by_audience, auth_server.key).claims["aud"] == "tickets-api"
    assert recorder.requests[1][0]["audience"] == ["tickets-api"] and "resource" not in recorder.requests[1][0]


async def test_from_a_route_the_request_is_the_source(
    auth_server: LocalAuthorizationServer, make_exchange: Make
) -> None:
    exchange = make_exchange()

    async def tool(request: Request) -> dict[str, object]:
        async with api_client(downstream_api(auth_server)) as api:
            seen = await api.get("/api", auth=exchange.auth(request, "tickets"))
        return {"status": seen.status_code, "seen": seen.json(), "caller": request.state.auth.sub}

    token = user_token(auth_server)
    async with asgi_client(mcp_server(auth_server, tool)) as client:
        answer = (await client.post("/mcp", headers={"authorization": f"Bearer {token}"})).json()
    assert answer == {
        "status": 200,
        "seen": {"sub": "alice", "actors": ["mcp-server"], "client_id": "mcp-server", "scopes": ["tickets:read"]},
        "caller": "alice",
    }
