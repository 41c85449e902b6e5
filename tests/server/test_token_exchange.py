"""The local authorization server's token-exchange grant (RFC 8693): who may exchange what,
scope that only narrows, `act` naming the exchanging client (§4.1), a lifetime bounded by the
subject token, no refresh token, and the opaque form's introspection answer."""

from __future__ import annotations

import time
from typing import Any

import httpx2
import pytest
from joserfc import jwt

from mcp_auth_middleware.server import LocalAuthorizationServer

ISSUER = "https://auth.example.com"
MCP, TICKETS = "https://mcp.example.com/mcp", "https://tickets.example.com/api"
EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS = "urn:ietf:params:oauth:token-type:access_token"


def server(**options: Any) -> LocalAuthorizationServer:
    local = LocalAuthorizationServer(ISSUER, scopes_supported=["mcp", "tickets:read", "tickets:write"], **options)
    local.register_client(client_id="mcp-server", client_secret="s", grant_types=["client_credentials"])
    local.allow_token_exchange("mcp-server", from_resources=[MCP], to_resources=[TICKETS], scopes=["tickets:read"])
    return local


async def exchange(local: LocalAuthorizationServer, subject: str, **form: Any) -> httpx2.Response:
    client_id = form.pop("client_id", "mcp-server")
    data = {"grant_type": EXCHANGE, "subject_token": subject, "subject_token_type": ACCESS, "resource": TICKETS}
    data.update(form)
    data = {k: v for k, v in data.items() if v is not None}
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=local.app), base_url=ISSUER) as client:
        return await client.post("/token", data=data, auth=(client_id, "s"))


def subject(local: LocalAuthorizationServer, **options: Any) -> str:
    options.setdefault("audience", MCP)
    options.setdefault("scopes", ["mcp", "tickets:read", "tickets:write"])
    return local.mint_token(sub="alice", client_id="claude", **options)


async def test_an_exchange_keeps_the_user_names_the_actor_and_narrows() -> None:
    local = server()
    answer = await exchange(local, subject(local))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["issued_token_type"] == ACCESS and body["token_type"] == "Bearer" and "refresh_token" not in body
    claims = jwt.decode(body["access_token"], local.key).claims
    assert (claims["sub"], claims["aud"], claims["client_id"]) == ("alice", TICKETS, "mcp-server")
    assert claims["act"] == {"sub": "mcp-server"} and claims["scope"] == "tickets:read"  # the policy's, not all
    assert EXCHANGE in local.metadata["grant_types_supported"]


@pytest.mark.parametrize(
    ("form", "error"),
    [
        ({"scope": "tickets:write"}, "invalid_scope"),  # beyond the policy
        ({"resource": "https://other.example.com"}, "invalid_target"),
        ({"resource": None}, "invalid_target"),
        ({"subject_token_type": "urn:ietf:params:oauth:token-type:id_token"}, "invalid_request"),
        ({"subject_token_type": None}, "invalid_request"),
        ({"actor_token": "x", "actor_token_type": ACCESS}, "invalid_request"),
        ({"requested_token_type": "urn:ietf:params:oauth:token-type:refresh_token"}, "invalid_request"),
        ({"subject_token": "not-a-token-we-issued"}, "invalid_grant"),
        ({"client_id": "claude"}, "invalid_client"),  # a public client, no secret
    ],
)
async def test_what_the_policy_and_the_rfc_refuse(form: dict[str, Any], error: str) -> None:
    local = server()
    local.register_client(client_id="claude", client_secret=None, redirect_uris=["http://127.0.0.1/cb"])
    answer = await exchange(local, form.pop("subject_token", None) or subject(local), **form)
    assert answer.status_code in (400, 401) and answer.json()["error"] == error


async def test_only_tokens_for_the_clients_own_resource_and_never_bound_ones() -> None:
    local = server()
    other_audience = subject(local, audience="https://elsewhere.example.com")
    assert (await exchange(local, other_audience)).json()["error"] == "invalid_grant"
    bound = subject(local, dpop_jkt="0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I")
    assert (await exchange(local, bound)).json()["error"] == "invalid_grant"
    revoked = subject(local)
    local.revoke_tokens([revoked])
    assert (await exchange(local, revoked)).json()["error"] == "invalid_grant"
    local.register_client(client_id="no-policy", client_secret="s", grant_types=["client_credentials"])
    assert (await exchange(local, subject(local), client_id="no-policy")).json()["error"] == "unauthorized_client"
    with pytest.raises(ValueError, match="confidential client"):
        local.allow_token_exchange("nobody", from_resources=[MCP], to_resources=[TICKETS])


async def test_never_outlives_the_subject_token() -> None:
    local = server()
    short = subject(local, expires_in=20)
    body = (await exchange(local, short)).json()
    assert body["expires_in"] <= 20
    assert jwt.decode(body["access_token"], local.key).claims["exp"] <= time.time() + 20


async def test_the_opaque_form_says_the_actor_in_introspection() -> None:
    local = server(token_format="opaque")
    local.register_resource_server("tickets-api", "t", [TICKETS])
    issued = (await exchange(local, subject(local))).json()["access_token"]
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=local.app), base_url=ISSUER) as client:
        answer = (await client.post("/introspect", data={"token": issued}, auth=("tickets-api", "t"))).json()
    assert answer["active"] is True and answer["sub"] == "alice" and answer["act"] == {"sub": "mcp-server"}
    assert answer["aud"] == TICKETS and answer["client_id"] == "mcp-server"
