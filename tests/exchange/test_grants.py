"""The Entra on-behalf-of preset against a stand-in that answers as Microsoft documents the
flow (identity platform, "Microsoft identity platform and OAuth 2.0 On-Behalf-Of flow"): the
v2.0 token endpoint of the tenant, a `jwt-bearer` grant with `requested_token_use`, the client
secret in the body, an answer without `issued_token_type`, AADSTS errors with `error_codes` and,
for conditional access, `interaction_required` with a `claims` challenge."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs

import httpx2
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from mcp_auth_middleware import AuthInfo
from mcp_auth_middleware.exchange import Downstream, InteractionRequiredError, InvalidGrantError, TokenExchange

TENANT = "8eaef023-2b34-4da1-9baa-8bc8c9d6a490"
GRAPH = "https://graph.microsoft.com/user.read"
CLAIMS = json.dumps({"access_token": {"capolids": {"essential": True, "values": ["c1"]}}})


class EntraStandIn:
    """POST /{tenant}/oauth2/v2.0/token, as Entra answers it."""

    def __init__(self) -> None:
        self.forms: list[dict[str, list[str]]] = []
        self.headers: list[dict[str, str]] = []
        self.app = Starlette(routes=[Route("/{tenant}/oauth2/v2.0/token", self.token, methods=["POST"])])

    async def token(self, request: Request) -> JSONResponse:
        form = parse_qs((await request.body()).decode())
        self.forms.append(form)
        self.headers.append(dict(request.headers))
        if request.path_params["tenant"] != TENANT:
            return self.error(400, "invalid_request", "AADSTS90002: Tenant not found.", 90002)
        if form.get("client_secret") != ["s3cret"]:
            return self.error(401, "invalid_client", "AADSTS7000215: Invalid client secret provided.", 7000215)
        assertion = form["assertion"][0]
        if assertion == "expired":
            return self.error(
                400, "invalid_grant", "AADSTS500133: Assertion is not within its valid time range.", 500133
            )
        if assertion == "needs-mfa":
            body = self.body("interaction_required", "AADSTS50079: Due to a configuration change ...", 50079)
            return JSONResponse({**body, "suberror": "basic_action", "claims": CLAIMS}, 400)
        return JSONResponse(
            {
                "token_type": "Bearer",
                "scope": GRAPH,
                "expires_in": 3269,
                "ext_expires_in": 0,
                "access_token": f"graph-token-for-{assertion}",
                "refresh_token": "never-kept",
            }
        )

    @staticmethod
    def body(error: str, description: str, code: int) -> dict[str, Any]:
        return {
            "error": error,
            "error_description": description,
            "error_codes": [code],
            "timestamp": "2026-12-04 23:00:00Z",
            "trace_id": "0000aaaa-11bb-cccc-dd22-eeeeee333333",
            "correlation_id": "aaaa0000-bb11-2222-33cc-444444dddddd",
        }

    def error(self, status: int, error: str, description: str, code: int) -> JSONResponse:
        return JSONResponse(self.body(error, description, code), status)


def entra(stand_in: EntraStandIn, **options: Any) -> TokenExchange:
    return TokenExchange.entra_on_behalf_of(
        tenant=options.pop("tenant", TENANT),
        client_id="6731de76-14a6-49ae-97bc-6eba6914391e",
        client_secret=options.pop("client_secret", "s3cret"),
        authority="https://login.microsoftonline.com",
        downstreams={"graph": Downstream(scopes=[GRAPH])},
        http_client=httpx2.AsyncClient(transport=httpx2.ASGITransport(app=stand_in.app)),
        **options,
    )


def user(token: str) -> AuthInfo:
    return AuthInfo("alice", "app", frozenset(), token=token)


async def test_the_on_behalf_of_request_and_answer() -> None:
    stand_in = EntraStandIn()
    token = await entra(stand_in).exchange(user("user-token"), "graph")
    assert token.access_token == "graph-token-for-user-token" and token.token_type == "Bearer"
    assert token.scopes == {GRAPH} and token.issued_token_type is None and token.expires_at is not None
    assert stand_in.forms[0] == {
        "grant_type": ["urn:ietf:params:oauth:grant-type:jwt-bearer"],
        "assertion": ["user-token"],
        "requested_token_use": ["on_behalf_of"],
        "scope": [GRAPH],
        "client_id": ["6731de76-14a6-49ae-97bc-6eba6914391e"],
        "client_secret": ["s3cret"],  # client_secret_post, as the preset sends it
    }
    assert "authorization" not in stand_in.headers[0]


async def test_entra_refusals_are_typed_with_their_codes() -> None:
    stand_in = EntraStandIn()
    exchange = entra(stand_in)
    with pytest.raises(InvalidGrantError) as expired:
        await exchange.token(user("expired"), "graph")
    assert expired.value.extra["error_codes"] == [500133]
    with pytest.raises(InteractionRequiredError) as mfa:
        await exchange.token(user("needs-mfa"), "graph")
    # The claims challenge a client needs to sign the user in again (conditional access).
    assert json.loads(mfa.value.extra["claims"]) == json.loads(CLAIMS)


def test_entra_names_the_api_by_its_scopes() -> None:
    exchange = entra(EntraStandIn())
    with pytest.raises(ValueError, match="names the API by its scopes"):
        exchange.grant.form("t", Downstream("https://graph.microsoft.com"), ())
