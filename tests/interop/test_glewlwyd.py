"""Against a second real authorization server: Glewlwyd (C, Debian's package), configured as
tests/interop/glewlwyd.py says. Its access tokens through its JWKS (one-line discovery), the
same tokens through its RFC 7662 introspection endpoint (which lets resource servers in only
with a bearer token of their own), and DPoP-bound tokens (RFC 9449), each through the
middleware on real uvicorn."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
from joserfc.jwk import ECKey

from mcp_auth_middleware import IntrospectionValidator, MCPAuthMiddleware
from mcp_auth_middleware.exchange.proofs import ProofMaker
from mcp_auth_middleware.testing import serve

from ..conftest import echo_app
from .glewlwyd import MCP_CLIENT, RESOURCE, RESOURCE_SERVER, Glewlwyd

pytestmark = pytest.mark.interop


async def token_from(
    glewlwyd: Glewlwyd, *, resource: str | None = RESOURCE, proof: str | None = None
) -> dict[str, Any]:
    form = {"grant_type": "client_credentials", "scope": "mcp", **({"resource": resource} if resource else {})}
    async with httpx2.AsyncClient() as http:
        response = await http.post(
            f"{glewlwyd.issuer}/token", auth=MCP_CLIENT, data=form, headers={"DPoP": proof} if proof else {}
        )
    assert response.status_code == 200, response.text
    return dict(response.json())


@pytest.fixture
def served(request: pytest.FixtureRequest) -> Iterator[Any]:
    """`served(app)`: the app on real uvicorn; the URL of its /mcp route."""
    stack: list[Any] = []

    def start(app: Any) -> str:
        context = serve(app)
        stack.append(context)
        return context.__enter__() + "/mcp"

    yield start
    for context in reversed(stack):
        context.__exit__(None, None, None)


async def test_its_jwt_access_tokens_through_its_jwks(glewlwyd: Glewlwyd, served: Any) -> None:
    token = (await token_from(glewlwyd))["access_token"]
    url = served(MCPAuthMiddleware(echo_app(), resource=RESOURCE, issuer=glewlwyd.issuer, required_scopes=["mcp"]))
    async with httpx2.AsyncClient() as http:
        response = await http.post(url, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    assert response.json()["sub"] == "mcp-client" and response.json()["client_id"] == "mcp-client"
    assert response.json()["scopes"] == ["mcp"]


async def test_a_token_asked_without_resource_is_refused_and_the_log_says_why(
    glewlwyd: Glewlwyd, served: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Without `resource` (RFC 8707), Glewlwyd puts the granted scopes in `aud`."""
    token = (await token_from(glewlwyd, resource=None))["access_token"]
    url = served(MCPAuthMiddleware(echo_app(), resource=RESOURCE, issuer=glewlwyd.issuer))
    with caplog.at_level(logging.WARNING, "mcp_auth_middleware"):
        async with httpx2.AsyncClient() as http:
            response = await http.post(url, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert "audience 'mcp' does not include" in caplog.text


def introspection(glewlwyd: Glewlwyd, secret: str) -> IntrospectionValidator:
    """docs/identity-providers.md, Glewlwyd: a bearer token of the resource server's own."""
    return IntrospectionValidator(
        f"{glewlwyd.issuer}/introspect",
        client_id=RESOURCE_SERVER[0],
        client_secret=secret,
        token_endpoint=f"{glewlwyd.issuer}/token",
        token_scope="introspect",
        allow_http=True,
    )


async def test_its_tokens_through_its_introspection_endpoint(glewlwyd: Glewlwyd, served: Any) -> None:
    token = (await token_from(glewlwyd))["access_token"]
    validator = introspection(glewlwyd, RESOURCE_SERVER[1])
    url = served(
        MCPAuthMiddleware(echo_app(), resource=RESOURCE, authorization_servers=[glewlwyd.issuer], validator=validator)
    )
    async with httpx2.AsyncClient() as http:
        allowed = await http.post(url, headers={"Authorization": f"Bearer {token}"})
        unknown = await http.post(url, headers={"Authorization": "Bearer a-token-glewlwyd-never-issued"})
    assert allowed.status_code == 200, allowed.text
    assert allowed.json()["client_id"] == "mcp-client" and allowed.json()["scopes"] == ["mcp"]
    assert unknown.status_code == 401


async def test_an_introspecting_server_without_its_own_token_is_told_why(
    glewlwyd: Glewlwyd, served: Any, caplog: pytest.LogCaptureFixture
) -> None:
    token = (await token_from(glewlwyd))["access_token"]
    validator = introspection(glewlwyd, "not-its-secret")
    url = served(
        MCPAuthMiddleware(echo_app(), resource=RESOURCE, authorization_servers=[glewlwyd.issuer], validator=validator)
    )
    with caplog.at_level(logging.ERROR, "mcp_auth_middleware"):
        async with httpx2.AsyncClient() as http:
            response = await http.post(url, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 503
    assert "gave this resource server no token for introspection" in caplog.text


async def test_dpop_bound_tokens(glewlwyd: Glewlwyd, served: Any) -> None:
    maker = ProofMaker(ECKey.generate_key("P-256", private=True))
    answer = await token_from(glewlwyd, proof=maker.proof("POST", f"{glewlwyd.issuer}/token"))
    token = answer["access_token"]
    assert answer["token_type"].lower() == "dpop"
    url = served(MCPAuthMiddleware(echo_app(), resource=RESOURCE, issuer=glewlwyd.issuer, dpop=True))
    async with httpx2.AsyncClient() as http:
        bound = await http.post(
            url, headers={"Authorization": f"DPoP {token}", "DPoP": maker.proof("POST", RESOURCE, token)}
        )
        as_bearer = await http.post(url, headers={"Authorization": f"Bearer {token}"})
        other_key = ProofMaker(ECKey.generate_key("P-256", private=True)).proof("POST", RESOURCE, token)
        stolen = await http.post(url, headers={"Authorization": f"DPoP {token}", "DPoP": other_key})
    assert bound.status_code == 200, bound.text
    assert as_bearer.status_code == 401 and stolen.status_code == 401
