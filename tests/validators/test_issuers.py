"""Several issuers: routing by the unverified `iss` among configured issuers only, tenants from
a template with an allow-list, per-issuer state, and the metadata listing them all."""

from __future__ import annotations

import pytest

from mcp_auth_middleware import IssuerRouter, MCPAuthMiddleware, TenantIssuers
from mcp_auth_middleware.testing import LocalIssuer, free_port, running_authorization_server

from ..conftest import RESOURCE, asgi_client, bearer, echo_app

A, B = LocalIssuer("https://a.example"), LocalIssuer("https://b.example")


async def test_each_token_goes_to_its_issuer(issuer: LocalIssuer) -> None:
    app = MCPAuthMiddleware(
        echo_app(), resource=RESOURCE, validator=IssuerRouter({A.issuer: A.validator(), B.issuer: B.validator()})
    )
    async with asgi_client(app) as client:
        document = (await client.get("/.well-known/oauth-protected-resource/mcp")).json()
        from_a = await client.post("/mcp", headers=bearer(A.mint_token(audience=RESOURCE, sub="from-a")))
        from_b = await client.post("/mcp", headers=bearer(B.mint_token(audience=RESOURCE, sub="from-b")))
        unknown = await client.post("/mcp", headers=bearer(issuer.mint_token(audience=RESOURCE)))
        # Claims to come from A, signed with B's key: A's keys decide, and refuse it.
        forged = await client.post("/mcp", headers=bearer(B.mint_token(audience=RESOURCE, iss=A.issuer)))
    assert document["authorization_servers"] == [A.issuer, B.issuer]
    assert (from_a.json()["sub"], from_b.json()["sub"]) == ("from-a", "from-b")
    assert unknown.status_code == 401 and "not trusted" in unknown.json()["error_description"]
    assert forged.status_code == 401


async def test_an_unknown_issuer_never_causes_a_fetch_and_an_outage_stays_with_its_issuer() -> None:
    down = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with running_authorization_server() as up:
        app = MCPAuthMiddleware(echo_app(), resource=RESOURCE, issuers=[up.issuer, down])
        router = app.validator
        assert isinstance(router, IssuerRouter)
        async with asgi_client(app) as client:
            ok = await client.post("/mcp", headers=bearer(up.mint_token(audience=RESOURCE, sub="u")))
            unavailable = await client.post("/mcp", headers=bearer(LocalIssuer(down).mint_token(audience=RESOURCE)))
            fetches = [v.keys.fetches for v in router.validators.values()]  # type: ignore[attr-defined]
            stranger = await client.post(
                "/mcp", headers=bearer(LocalIssuer("https://evil.example").mint_token(audience=RESOURCE))
            )
            assert [v.keys.fetches for v in router.validators.values()] == fetches  # type: ignore[attr-defined]
    assert ok.status_code == 200 and ok.json()["sub"] == "u"
    assert unavailable.status_code == 503  # the other issuer's outage, not this one's
    assert stranger.status_code == 401
    assert set(router.issuers) == {up.issuer, down}


async def test_tenant_issuers_from_a_template_with_an_allow_list() -> None:
    template = "https://login.example.com/{tenant}/v2.0"
    tenants = {"t1": LocalIssuer(template.format(tenant="t1")), "t2": LocalIssuer(template.format(tenant="t2"))}
    built: list[str] = []

    def validator_for(issuer: str) -> object:
        built.append(issuer)
        return tenants[issuer.split("/")[3]].validator()

    router = IssuerRouter({}, tenants=TenantIssuers(template, tenants="t1", validator_for=validator_for))  # type: ignore[arg-type]
    app = MCPAuthMiddleware(echo_app(), resource=RESOURCE, validator=router)
    async with asgi_client(app) as client:
        document = (await client.get("/.well-known/oauth-protected-resource/mcp")).json()
        allowed = await client.post("/mcp", headers=bearer(tenants["t1"].mint_token(audience=RESOURCE, sub="t1-user")))
        again = await client.post("/mcp", headers=bearer(tenants["t1"].mint_token(audience=RESOURCE)))
        elsewhere = await client.post(
            "/mcp", headers=bearer(tenants["t1"].mint_token(audience="https://other.example/mcp"))
        )
        other_tenant = await client.post("/mcp", headers=bearer(tenants["t2"].mint_token(audience=RESOURCE)))
    assert document["authorization_servers"] == ["https://login.example.com/t1/v2.0"]
    assert allowed.json()["sub"] == "t1-user" and again.status_code == 200
    assert elsewhere.status_code == 401  # the lazily built validator is bound to this resource
    assert other_tenant.status_code == 401
    assert built == ["https://login.example.com/t1/v2.0"]  # once, and never for t2


def test_configuration_errors() -> None:
    with pytest.raises(ValueError, match="tenant"):
        TenantIssuers("https://login.example.com/v2.0", tenants="t1")
    with pytest.raises(ValueError, match="tenants"):
        TenantIssuers("https://login.example.com/{tenant}", tenants=[])
    with pytest.raises(ValueError, match="issuers"):
        MCPAuthMiddleware(echo_app(), resource=RESOURCE, issuers=["https://a.example"], issuer="https://b.example")
