"""The gateway service in process: what each gateway's subrequest gets, and why."""

from __future__ import annotations

import base64
import logging
from typing import Any

import httpx2
import pytest
from joserfc.jwk import ECKey

from mcp_auth_middleware import IssuerRouter
from mcp_auth_middleware.exchange.proofs import ProofMaker
from mcp_auth_middleware.gateway import GatewayOptions, GatewayService, verify_assertion
from mcp_auth_middleware.testing import LocalIssuer

from ..conftest import ISSUER, RESOURCE

TOOLS = {"delete_notes": ["notes:delete"]}


def service(issuer: LocalIssuer, **options: Any) -> GatewayService:
    options.setdefault("gateway", "nginx")
    options.setdefault("validator", issuer.validator())
    options.setdefault("authorization_servers", [ISSUER])
    options.setdefault("required_scopes", ["mcp"])
    options.setdefault("tool_scopes", TOOLS)
    return GatewayService(resource=RESOURCE, **options)


def client(app: GatewayService, peer: str = "127.0.0.1") -> httpx2.AsyncClient:
    transport = httpx2.ASGITransport(app=app, client=(peer, 40000))
    return httpx2.AsyncClient(transport=transport, base_url="http://auth-service:9100")


def nginx(uri: str = "/mcp", method: str = "POST", **headers: str) -> dict[str, str]:
    """What the nginx configuration in docs/gateways.md sends with each subrequest."""
    return {"X-Original-Method": method, "X-Original-URI": uri, "X-Original-Host": "mcp.example.com", **headers}


#: What makes the upstream check Mcp-Method and Mcp-Name against the body (MCP 2026-07-28).
MODERN = {"MCP-Protocol-Version": "2026-07-28"}


def tool_call(name: str) -> dict[str, str]:
    """The headers of an MCP 2026-07-28 tools/call."""
    return {**MODERN, "Mcp-Method": "tools/call", "Mcp-Name": name}


@pytest.fixture
def token(issuer: LocalIssuer) -> str:
    return issuer.mint_token(audience=RESOURCE, sub="alice", scopes=["mcp"], client_id="app-1")


async def test_an_allowed_request_names_the_caller_for_the_upstream(issuer: LocalIssuer, token: str) -> None:
    async with client(service(issuer)) as http:
        response = await http.get("/check", headers=nginx(Authorization=f"Bearer {token}", **tool_call("whoami")))
    assert response.status_code == 200
    assert response.headers["x-auth-subject"] == "alice"
    assert response.headers["x-auth-client-id"] == "app-1"
    assert response.headers["x-auth-scopes"] == "mcp"
    assert response.headers["x-auth-issuer"] == ISSUER
    assert response.headers["cache-control"] == "no-store"


async def test_denials_are_the_middlewares_with_their_challenges(issuer: LocalIssuer, token: str) -> None:
    async with client(service(issuer)) as http:
        unauthenticated = await http.get("/check", headers=nginx())
        narrow = await http.get("/check", headers=nginx(Authorization=f"Bearer {token}", **tool_call("delete_notes")))
        forged = await http.get("/check", headers=nginx(Authorization=f"Bearer {token[:-4]}AAAA"))
    assert unauthenticated.status_code == 401
    challenge = unauthenticated.headers["www-authenticate"]
    assert challenge.startswith("Bearer ") and "resource_metadata=" in challenge and 'scope="mcp"' in challenge
    assert "x-auth-subject" not in unauthenticated.headers  # a denial goes to the client, not upstream
    # MCP authorization, Scope Challenge Handling: 403 naming the scopes the tool needs.
    assert narrow.status_code == 403
    assert 'error="insufficient_scope"' in narrow.headers["www-authenticate"]
    assert "notes:delete" in narrow.headers["www-authenticate"]
    assert forged.status_code == 401 and 'error="invalid_token"' in forged.headers["www-authenticate"]


async def test_per_tool_rules_from_the_base64_form_of_mcp_name(issuer: LocalIssuer) -> None:
    wide = issuer.mint_token(audience=RESOURCE, scopes=["mcp", "notes:delete"])
    narrow = issuer.mint_token(audience=RESOURCE, scopes=["mcp"])
    app = service(issuer, tool_scopes={"löschen": ["notes:delete"]})
    encoded = "=?base64?" + base64.b64encode("löschen".encode()).decode() + "?="
    async with client(app) as http:
        denied = await http.get("/check", headers=nginx(Authorization=f"Bearer {narrow}", **tool_call(encoded)))
        allowed = await http.get("/check", headers=nginx(Authorization=f"Bearer {wide}", **tool_call(encoded)))
    assert denied.status_code == 403 and allowed.status_code == 200


async def test_malformed_mcp_headers_are_refused(issuer: LocalIssuer, token: str) -> None:
    bearer = f"Bearer {token}"
    async with client(service(issuer)) as http:
        no_name = await http.get(
            "/check", headers=nginx(Authorization=bearer, **MODERN, **{"Mcp-Method": "tools/call"})
        )
        bad_name = await http.get("/check", headers=nginx(Authorization=bearer, **tool_call("=?base64?%%%?=")))
        name_alone = await http.get(
            "/check", headers=nginx(Authorization=bearer, **MODERN, **{"Mcp-Name": "delete_notes"})
        )
        bad_method = await http.get(
            "/check", headers=nginx(Authorization=bearer, **MODERN, **{"Mcp-Method": "=?base64?!?="})
        )
    for response in (no_name, bad_name, name_alone, bad_method):
        assert response.status_code == 400, response.text
        assert response.json()["error"]["code"] == -32020


async def test_without_mcp_headers_the_default_refuses_when_tools_have_rules(issuer: LocalIssuer, token: str) -> None:
    bearer = f"Bearer {token}"
    async with client(service(issuer)) as http:
        refused = await http.get("/check", headers=nginx(Authorization=bearer))
        stream = await http.get("/check", headers=nginx(method="GET", Authorization=bearer))
    assert refused.status_code == 400
    assert 'error="invalid_request"' in refused.headers["www-authenticate"]
    assert "Mcp-Method" in refused.json()["error_description"]
    assert stream.status_code == 200  # a GET carries no message: the global scopes decide it
    async with client(service(issuer, tool_scopes={})) as http:  # no per-tool rules: nothing to decide
        assert (await http.get("/check", headers=nginx(Authorization=bearer))).status_code == 200


async def test_without_mcp_headers_global_decides_under_the_global_scopes(
    issuer: LocalIssuer, token: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, "mcp_auth_middleware"):
        app = service(issuer, without_mcp_headers="global")
    assert "may call any tool" in caplog.text
    async with client(app) as http:
        allowed = await http.get("/check", headers=nginx(Authorization=f"Bearer {token}"))
        headers = nginx(Authorization=f"Bearer {token}", **tool_call("delete_notes"))
        still_per_tool = await http.get("/check", headers=headers)
    assert allowed.status_code == 200
    assert still_per_tool.status_code == 403  # with the headers, the rules hold as ever


async def test_only_trusted_gateways_are_answered(
    issuer: LocalIssuer, token: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, "mcp_auth_middleware"):
        async with client(service(issuer), peer="203.0.113.9") as http:
            response = await http.get("/check", headers=nginx(Authorization=f"Bearer {token}", uri="/health"))
    assert response.status_code == 403 and response.json()["error"] == "untrusted_gateway"
    assert "x-auth-subject" not in response.headers
    assert "203.0.113.9" in caplog.text and "trusted_gateways" in caplog.text
    async with client(service(issuer, trusted_gateways="203.0.113.0/24"), peer="203.0.113.9") as http:
        assert (await http.get("/check", headers=nginx(Authorization=f"Bearer {token}"))).status_code == 400


async def test_a_subrequest_without_the_gateways_headers_is_a_misconfiguration(
    issuer: LocalIssuer, token: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, "mcp_auth_middleware"):
        async with client(service(issuer)) as http:
            response = await http.get("/check", headers={"Authorization": f"Bearer {token}"})
            half = await http.get("/check", headers={"X-Original-Method": "POST", "Authorization": f"Bearer {token}"})
    assert response.status_code == 503 and response.json()["error"] == "server_misconfigured"
    assert half.status_code == 503 and "carries no X-Original-URI header, which nginx" in caplog.text
    assert "no X-Original-Method and no X-Original-URI header" in caplog.text
    assert "is the gateway in front nginx (--gateway, MCP_AUTH_GATEWAY)" in caplog.text


async def test_a_client_cannot_choose_the_uri_caddy_and_traefik_report(issuer: LocalIssuer) -> None:
    """Caddy and Traefik pass the client's headers on: an X-Original-URI the client sent
    naming a public path is not read when the gateway is Caddy."""
    app = service(issuer, gateway="caddy", public_paths=["/health"])
    forwarded = {"X-Forwarded-Method": "POST", "X-Forwarded-Uri": "/mcp", "X-Forwarded-Host": "mcp.example.com"}
    async with client(app) as http:
        response = await http.get(
            "/check", headers={**forwarded, "X-Original-URI": "/health", "X-Original-Method": "GET"}
        )
        public = await http.get(
            "/check", headers={**forwarded, "X-Forwarded-Uri": "/health", "X-Forwarded-Method": "GET"}
        )
    assert response.status_code == 401
    assert public.status_code == 200 and public.headers["x-auth-subject"] == ""  # nobody, overwriting a client's


async def test_envoy_sends_the_original_method_and_path_after_a_prefix(issuer: LocalIssuer, token: str) -> None:
    app = service(issuer, gateway="envoy", public_paths=["/health"])
    async with client(app) as http:
        allowed = await http.post("/check/mcp", headers={"Authorization": f"Bearer {token}", **tool_call("whoami")})
        public = await http.get("/check/health")
        unprefixed = await http.post("/mcp", headers={"Authorization": f"Bearer {token}"})
    assert allowed.status_code == 200 and allowed.headers["x-auth-subject"] == "alice"
    assert public.status_code == 200
    assert unprefixed.status_code == 503


async def test_dpop_proofs_are_checked_against_the_original_request(issuer: LocalIssuer) -> None:
    maker = ProofMaker(ECKey.generate_key("P-256", private=True))
    bound = issuer.mint_token(audience=RESOURCE, sub="dora", scopes=["mcp"], cnf={"jkt": maker.thumbprint})
    app = service(issuer, dpop=True)
    auth = {"Authorization": f"DPoP {bound}", **tool_call("whoami")}
    async with client(app) as http:
        good = await http.get("/check", headers=nginx(**auth, DPoP=maker.proof("POST", RESOURCE, bound)))
        # htu is the URL the client used, not the service's: a proof for /check fails.
        wrong_url = maker.proof("POST", "http://auth-service:9100/check", bound)
        bad_url = await http.get("/check", headers=nginx(**auth, DPoP=wrong_url))
        wrong_method = await http.get("/check", headers=nginx(**auth, DPoP=maker.proof("GET", RESOURCE, bound)))
        proof = maker.proof("POST", RESOURCE, bound)
        first = await http.get("/check", headers=nginx(**auth, DPoP=proof))
        replayed = await http.get("/check", headers=nginx(**auth, DPoP=proof))
    assert good.status_code == 200 and good.headers["x-auth-subject"] == "dora"
    for refused in (bad_url, wrong_method, replayed):
        assert refused.status_code == 401 and "invalid_dpop_proof" in refused.headers["www-authenticate"]
    assert first.status_code == 200


async def test_origin_is_checked_as_the_middleware_checks_it(issuer: LocalIssuer, token: str) -> None:
    async with client(service(issuer)) as http:
        headers = nginx(Authorization=f"Bearer {token}", Origin="https://evil.example", **tool_call("whoami"))
        response = await http.get("/check", headers=headers)
    assert response.status_code == 403 and response.json()["error"] == "forbidden_origin"


async def test_a_token_in_the_original_query_is_refused(issuer: LocalIssuer, token: str) -> None:
    async with client(service(issuer)) as http:
        response = await http.get("/check", headers=nginx(uri=f"/mcp?access_token={token}"))
    assert response.status_code == 400
    assert token not in response.text and token not in str(response.headers)


async def test_the_metadata_is_served_for_the_gateway_to_route_here(issuer: LocalIssuer) -> None:
    async with client(service(issuer), peer="198.51.100.7") as http:  # any address: it is public
        document = await http.get("/.well-known/oauth-protected-resource/mcp")
        root = await http.get("/.well-known/oauth-protected-resource")
    assert document.status_code == 200 and document.json()["resource"] == RESOURCE
    assert document.json()["authorization_servers"] == [ISSUER]
    assert root.json() == document.json()


async def test_a_signed_assertion_the_upstream_can_verify(issuer: LocalIssuer, token: str) -> None:
    key = ECKey.generate_key("P-256", private=True)
    app = service(issuer, assertion_key=key.as_pem(private=True).decode(), assertion_lifetime=30)
    async with client(app) as http:
        jwks = (await http.get("/.well-known/jwks.json")).json()
        response = await http.get("/check", headers=nginx(Authorization=f"Bearer {token}", **tool_call("whoami")))
    assertion = response.headers["x-auth-assertion"]
    claims = verify_assertion(assertion, jwks, issuer=RESOURCE, audience=RESOURCE)
    assert claims["sub"] == "alice" and claims["client_id"] == "app-1" and claims["scope"] == "mcp"
    assert claims["token_iss"] == ISSUER and claims["exp"] - claims["iat"] == 30
    assert "d" not in jwks["keys"][0]  # the public half only
    with pytest.raises(Exception, match="expired"):
        verify_assertion(assertion, jwks, issuer=RESOURCE, audience=RESOURCE, now=claims["exp"] + 60)
    with pytest.raises(Exception, match="another audience"):
        verify_assertion(assertion, jwks, issuer=RESOURCE, audience="https://other.example/mcp")
    other = ECKey.generate_key("P-256", private=True)
    with pytest.raises(Exception, match="signature"):
        verify_assertion(assertion, other.as_dict(private=False), issuer=RESOURCE, audience=RESOURCE)
    # An access token from the same key is not an assertion (RFC 8725 §3.11: explicit types).
    lookalike = LocalIssuer(ISSUER, key=key).mint_token(audience=RESOURCE, iss=RESOURCE)
    with pytest.raises(Exception, match="typ"):
        verify_assertion(lookalike, jwks, issuer=RESOURCE, audience=RESOURCE)


async def test_identity_values_that_are_not_plain_ascii_are_base64(issuer: LocalIssuer) -> None:
    token = issuer.mint_token(audience=RESOURCE, sub="zoë\r\nX-Auth-Scopes: admin", scopes=["mcp"])
    async with client(service(issuer)) as http:
        response = await http.get("/check", headers=nginx(Authorization=f"Bearer {token}", **tool_call("whoami")))
    value = response.headers["x-auth-subject"]
    assert value.startswith("=?base64?") and value.endswith("?=")
    assert base64.b64decode(value[9:-2]).decode() == "zoë\r\nX-Auth-Scopes: admin"
    assert response.headers["x-auth-scopes"] == "mcp"


def test_options_that_cannot_work_are_named() -> None:
    with pytest.raises(ValueError, match="gateway must be one of nginx, caddy, traefik, envoy"):
        GatewayOptions(gateway="apache")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"trusted_gateways: 'gateway\.local'"):
        GatewayOptions(gateway="nginx", trusted_gateways=["gateway.local"])
    with pytest.raises(ValueError, match="without_mcp_headers"):
        GatewayOptions(gateway="nginx", without_mcp_headers="allow")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="identity_headers: email"):
        GatewayOptions(gateway="nginx", identity_headers={"email": "X-Email"})
    with pytest.raises(ValueError, match="each needs a header of its own"):
        GatewayOptions(gateway="nginx", identity_headers={"sub": "X-Auth-Scopes"})
    with pytest.raises(ValueError, match="assertion_header: 'X Auth'"):
        GatewayOptions(gateway="nginx", assertion_header="X Auth")
    with pytest.raises(ValueError, match=r"GatewayService: .*gateway"):
        GatewayService(resource=RESOURCE, issuer=ISSUER)
    public = ECKey.generate_key("P-256", private=True).as_pem(private=False).decode()
    with pytest.raises(ValueError, match="assertion_key must be a private"):
        GatewayService(resource=RESOURCE, issuer=ISSUER, gateway="nginx", assertion_key=public)


def test_from_env_reads_the_gateway_variables_too(tmp_path: Any) -> None:
    key_file = tmp_path / "assertion.pem"
    key_file.write_bytes(ECKey.generate_key("P-256", private=True).as_pem(private=True))
    app = GatewayService.from_env(
        {
            "MCP_AUTH_RESOURCE": RESOURCE,
            "MCP_AUTH_ISSUER": ISSUER,
            "MCP_AUTH_GATEWAY": "traefik",
            "MCP_AUTH_TRUSTED_GATEWAYS": "10.0.0.0/8, 127.0.0.1",
            "MCP_AUTH_WITHOUT_MCP_HEADERS": "global",
            "MCP_AUTH_IDENTITY_HEADERS": "sub=X-User",
            "MCP_AUTH_ASSERTION_KEY_FILE": str(key_file),
        }
    )
    assert app.options.gateway == "traefik"
    assert app.options.trusted_gateways == ("10.0.0.0/8", "127.0.0.1")
    assert app.options.without_mcp_headers == "global"
    assert app.options.identity_headers["sub"] == "X-User"
    assert app.options.identity_headers["scopes"] == "X-Auth-Scopes"
    assert app.identity.jwks is not None
    with pytest.raises(ValueError, match="MCP_AUTH_GATEWAY is required"):
        GatewayService.from_env({"MCP_AUTH_RESOURCE": RESOURCE, "MCP_AUTH_ISSUER": ISSUER})


@pytest.mark.parametrize(
    "uri",
    ["/health/../mcp", "/health/%2e%2e/mcp", "/health%2F..%2Fmcp", "//mcp", "/./mcp", "/health/..", "/a\\..\\mcp"],
)
async def test_a_path_that_could_name_another_is_refused(issuer: LocalIssuer, uri: str) -> None:
    """`/health/../mcp` is a public path to a prefix match and `/mcp` to an upstream that
    normalises it: the gateway routed one, the upstream would serve the other."""
    async with client(service(issuer, public_paths=["/health*"])) as http:
        response = await http.get("/check", headers=nginx(uri=uri, **tool_call("whoami")))
        normal = await http.get("/check", headers=nginx(uri="/health/live?probe=1"))
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"
    assert normal.status_code == 200


async def test_opaque_tokens_are_introspected_as_the_middleware_does(mcp_auth_server_opaque: Any) -> None:
    server = mcp_auth_server_opaque
    server.register_resource_server("gateway-rs", "gateway-secret", [RESOURCE])
    token = server.mint_token(sub="olga", scopes=["mcp"], audience=RESOURCE)
    app = GatewayService(
        gateway="nginx",
        resource=RESOURCE,
        issuer=server.issuer,
        token_validation="introspection",
        client_id="gateway-rs",
        client_secret="gateway-secret",
        identity_headers={"sub": "X-User"},
    )
    async with client(app) as http:
        allowed = await http.get("/check", headers=nginx(Authorization=f"Bearer {token}"))
        unknown = await http.get("/check", headers=nginx(Authorization="Bearer not-a-token-it-issued"))
    assert allowed.status_code == 200 and allowed.headers["x-user"] == "olga"
    assert "x-auth-subject" not in allowed.headers  # renamed, not duplicated
    assert allowed.headers["x-auth-scopes"] == "mcp"  # the others keep their names
    assert unknown.status_code == 401


async def test_tokens_of_several_issuers_are_routed_as_the_middleware_routes_them(issuer: LocalIssuer) -> None:
    other = LocalIssuer("https://second-issuer.example.com")
    router = IssuerRouter({ISSUER: issuer.validator(), other.issuer: other.validator()})
    app = service(issuer, validator=router, authorization_servers=[ISSUER, other.issuer])
    first = issuer.mint_token(audience=RESOURCE, sub="from-first", scopes=["mcp"])
    second = other.mint_token(audience=RESOURCE, sub="from-second", scopes=["mcp"])
    unknown = LocalIssuer("https://unknown.example.com").mint_token(audience=RESOURCE, scopes=["mcp"])
    async with client(app) as http:
        answers = [
            await http.get("/check", headers=nginx(Authorization=f"Bearer {token}", **tool_call("whoami")))
            for token in (first, second, unknown)
        ]
    assert [a.headers.get("x-auth-subject") for a in answers[:2]] == ["from-first", "from-second"]
    assert [a.headers.get("x-auth-issuer") for a in answers[:2]] == [ISSUER, other.issuer]
    assert answers[2].status_code == 401


# -- What a hostile client tries ------------------------------------------------------------


@pytest.mark.parametrize(
    "versions",
    [
        ["2025-11-25"],
        ["2025-06-18"],
        ["2025-03-26"],
        [],  # none: a server assumes 2025-03-26
        ["2025-11-25", "2026-07-28"],  # two: servers read the first (or the last)
        ["2026-07-28", "2026-07-28"],
        ["2026-07-28, 2025-11-25"],
        ["latest"],  # not a version of a known shape
    ],
)
@pytest.mark.parametrize("method", ["tools/call", "ping", "tools/list", "initialize"])
async def test_mcp_headers_are_trusted_only_when_the_upstream_must_check_them(
    issuer: LocalIssuer, token: str, versions: list[str], method: str
) -> None:
    """An older protocol version's server routes the request by its body and never compares it
    with Mcp-Method: `Mcp-Name: whoami` could carry a body that calls delete_notes. Such a
    request is one without MCP headers: refused (the default) while tools have rules."""
    headers = [(k, v) for k, v in nginx(Authorization=f"Bearer {token}").items()]
    headers += [("MCP-Protocol-Version", version) for version in versions]
    headers += [("Mcp-Method", method)] + ([("Mcp-Name", "whoami")] if method == "tools/call" else [])
    async with client(service(issuer)) as http:
        refused = await http.get("/check", headers=headers)
    async with client(service(issuer, without_mcp_headers="global")) as http:
        global_ = await http.get("/check", headers=headers)
    assert refused.status_code == 400, refused.text
    assert "MCP-Protocol-Version" in refused.json()["error_description"]
    # "global": decided under the global scopes, as any request without the headers.
    assert global_.status_code == 200


async def test_mcp_headers_of_2026_07_28_and_later_decide_per_tool(issuer: LocalIssuer, token: str) -> None:
    bearer = f"Bearer {token}"
    async with client(service(issuer)) as http:
        later = {"MCP-Protocol-Version": "2027-03-01", "Mcp-Method": "tools/call", "Mcp-Name": "delete_notes"}
        denied_later = await http.get("/check", headers=nginx(Authorization=bearer, **later))
        ping = await http.get("/check", headers=nginx(Authorization=bearer, **MODERN, **{"Mcp-Method": "ping"}))
        padded = {"MCP-Protocol-Version": " 2026-07-28 ", "Mcp-Method": "tools/call", "Mcp-Name": "whoami"}
        allowed = await http.get("/check", headers=nginx(Authorization=bearer, **padded))
    assert denied_later.status_code == 403
    assert ping.status_code == 200  # the upstream makes sure the body is a ping
    assert allowed.status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        "/.well-known/oauth-protected-resource/x",
        "/.well-known/oauth-protected-resource/mcp/",
        "/.well-known/oauth-protected-resourcex",
        "/",
        "/mcp",
        "/checkx",
        "/check/mcp",
        "/CHECK",
    ],
)
async def test_only_the_check_path_answers_checks(issuer: LocalIssuer, token: str, path: str) -> None:
    """A gateway route that forwards a client's own request here (the metadata's, say) with the
    client's X-Original-* headers must not be a second check endpoint handing out identity."""
    headers = nginx(Authorization=f"Bearer {token}", **tool_call("whoami"))
    async with client(service(issuer)) as http:
        for method in ("GET", "POST"):
            response = await http.request(method, path, headers=headers)
            assert response.status_code == 404, (method, response.text)
            assert not any(name.startswith("x-auth-") for name in response.headers)
        check = await http.get("/check", headers=headers)
    assert check.status_code == 200 and check.headers["x-auth-subject"] == "alice"


async def test_the_check_path_is_an_option(issuer: LocalIssuer, token: str) -> None:
    headers = nginx(Authorization=f"Bearer {token}", **tool_call("whoami"))
    async with client(service(issuer, check_path="/_auth/mcp")) as http:
        moved = await http.get("/_auth/mcp", headers=headers)
        old = await http.get("/check", headers=headers)
    assert moved.status_code == 200 and old.status_code == 404
    for bad in ("check", "/check/", "/.well-known/check"):
        with pytest.raises(ValueError, match="check_path"):
            GatewayOptions(gateway="nginx", check_path=bad)


async def test_a_refused_origins_preflight_never_passes_to_the_upstream(issuer: LocalIssuer) -> None:
    """A gateway passes every 2xx on: a refused preflight is a 403, not the middleware's 204."""
    preflight = nginx(method="OPTIONS", Origin="https://evil.example", **{"Access-Control-Request-Method": "POST"})
    async with client(service(issuer, allowed_origins=["https://app.example"])) as http:
        refused = await http.get("/check", headers=preflight)
        allowed = await http.get("/check", headers={**preflight, "Origin": "https://app.example"})
    assert refused.status_code == 403 and refused.json()["error"] == "forbidden_origin"
    assert allowed.status_code == 200  # answered by CORS: the gateway passes it to the upstream


def test_a_misspelled_variable_is_named_not_ignored() -> None:
    base = {"MCP_AUTH_RESOURCE": RESOURCE, "MCP_AUTH_ISSUER": ISSUER, "MCP_AUTH_GATEWAY": "nginx"}
    with pytest.raises(
        ValueError, match=r"unknown variable MCP_AUTH_TOOL_SCOPE \(did you mean MCP_AUTH_TOOL_SCOPES\?\)"
    ):
        GatewayService.from_env({**base, "MCP_AUTH_TOOL_SCOPE": "delete_notes=notes:delete"})
    with pytest.raises(ValueError, match="did you mean MCP_AUTH_TRUSTED_GATEWAYS"):
        GatewayService.from_env({**base, "MCP_AUTH_TRUSTED_GATEWAY": "10.0.0.1"})
    with pytest.raises(ValueError, match="did you mean MCP_AUTH_CHECK_PATH"):
        GatewayOptions.from_env({**base, "MCP_AUTH_CHECK_PAHT": "/x"})


def test_every_gateway_variable_is_known_to_the_middleware_too() -> None:
    """One environment for the middleware and the service: neither takes the other's for a typo."""
    from mcp_auth_middleware.config import KNOWN_VARIABLES
    from mcp_auth_middleware.gateway.options import GATEWAY_VARIABLES

    assert set(GATEWAY_VARIABLES) <= KNOWN_VARIABLES
