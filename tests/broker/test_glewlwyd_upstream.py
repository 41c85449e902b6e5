"""The broker in front of Glewlwyd (Debian's, a C implementation unrelated to oidc-provider), by
OpenID Connect discovery: a sign-in through the broker, the ID token verified against Glewlwyd's
keys, the broker's own token for the MCP server, and Glewlwyd's token kept for tools."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx2

from mcp_auth_middleware.broker.authorization_server import Broker
from mcp_auth_middleware.broker.clients import BrokerClient
from mcp_auth_middleware.broker.providers import oidc
from mcp_auth_middleware.testing import free_port

from ..interop.conftest import glewlwyd  # noqa: F401 (a fixture)
from ..interop.glewlwyd import Glewlwyd
from .conftest import SECRET, BrokerBrowser, authorize_url, pkce


async def test_a_sign_in_through_the_broker_at_glewlwyd(glewlwyd: Glewlwyd, tmp_path: Path) -> None:  # noqa: F811
    origin = f"http://127.0.0.1:{free_port()}"
    issuer = f"{origin}/oauth"
    glewlwyd.add_user("bob", "bob-password-1")
    glewlwyd.add_sign_in_client("mcp-broker", "mcp-broker-secret", f"{issuer}/callback")
    upstream = oidc(glewlwyd.issuer, "mcp-broker", "mcp-broker-secret", scopes=("openid",), allow_http=True)
    broker = Broker.of(
        issuer, upstream, [f"{origin}/mcp"], [SECRET], storage=str(tmp_path / "broker.db"),
        clients=(BrokerClient.preregistered("cli", ["http://127.0.0.1/callback"]),),
    )  # fmt: skip
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=broker.app), base_url=origin) as http:
        browser = BrokerBrowser(http, issuer, glewlwyd.issuer)
        verifier, challenge = pkce()
        consent = await browser.get(authorize_url(issuer, "cli", challenge))
        to_provider = await browser.consent(consent)
        location = to_provider.headers["location"]
        assert location.startswith(glewlwyd.api) and "code_challenge_method=S256" in location and "nonce=" in location
        callback = await glewlwyd.sign_in(location, "bob", "bob-password-1", "mcp-broker")
        back = await browser.get(f"{issuer}/callback?{urlencode(callback)}")
        assert back.status_code == 303, back.text
        answer = dict(parse_qsl(urlsplit(back.headers["location"]).query))
        tokens = await http.post(f"{issuer}/token", data={
            "grant_type": "authorization_code", "code": answer["code"], "code_verifier": verifier, "client_id": "cli",
            "redirect_uri": "http://127.0.0.1:5555/callback"})  # fmt: skip
        assert tokens.status_code == 200, tokens.text
        auth = await broker.validator().for_resource(f"{origin}/mcp").validate(tokens.json()["access_token"])
        assert auth.sub and auth.issuer == issuer and auth.client_id == "cli"
        provider_token = await broker.provider_token(auth)
    await broker.aclose()
    async with httpx2.AsyncClient() as http:  # Glewlwyd's own API, with its token: the user the broker saw
        userinfo = await http.get(f"{glewlwyd.issuer}/userinfo", headers={"authorization": f"Bearer {provider_token}"})
    assert userinfo.status_code == 200 and userinfo.json()["sub"] == auth.sub
