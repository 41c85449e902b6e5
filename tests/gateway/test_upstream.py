"""CallerFromGateway: an upstream that reads the caller only from the service's signed
assertion. In process against the service's own assertions, and through real nginx whose
configuration forgot a line: the plain header is forged, the caller the tool sees is not."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import httpx2
import pytest
from fastmcp import FastMCP
from joserfc.jwk import ECKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from mcp_auth_middleware import get_auth
from mcp_auth_middleware.gateway import CallerFromGateway, GatewayService
from mcp_auth_middleware.testing import LocalIssuer, free_port, running_authorization_server, serve

from ..conftest import ISSUER, RESOURCE
from .conftest import modern_call, nginx, tool_result

KEY = ECKey.generate_key("P-256", private=True)


def signing_service(issuer: LocalIssuer, key: ECKey = KEY) -> GatewayService:
    return GatewayService(
        gateway="nginx",
        resource=RESOURCE,
        authorization_servers=[ISSUER],
        validator=issuer.validator(),
        assertion_key=key.as_pem(private=True).decode(),
    )


async def assertion_for(service: GatewayService, token: str) -> str:
    transport = httpx2.ASGITransport(app=service, client=("127.0.0.1", 40000))
    async with httpx2.AsyncClient(transport=transport, base_url="http://service") as http:
        headers = {"X-Original-Method": "GET", "X-Original-URI": "/mcp", "Authorization": f"Bearer {token}"}
        answer = await http.get("/check", headers=headers)
    assert answer.status_code == 200
    return answer.headers["x-auth-assertion"]


async def whoami(request: Request) -> JSONResponse:
    info = request.state.auth
    return JSONResponse({"sub": info.sub, "client_id": info.client_id, "scopes": sorted(info.scopes),
                         "issuer": info.issuer, "user": request.user.is_authenticated})  # fmt: skip


def upstream(**options: Any) -> CallerFromGateway:
    app = Starlette(routes=[Route("/mcp", whoami), Route("/health", lambda r: JSONResponse({"ok": True}))])
    options.setdefault("keys", signing_service(LocalIssuer(ISSUER)).identity.jwks)
    return CallerFromGateway(app, issuer=RESOURCE, public_paths=("/health",), **options)


async def test_the_caller_comes_from_the_assertion_only(issuer: LocalIssuer, caplog: pytest.LogCaptureFixture) -> None:
    token = issuer.mint_token(audience=RESOURCE, sub="alice", scopes=["mcp"], client_id="app-1")
    assertion = await assertion_for(signing_service(issuer), token)
    other_key = ECKey.generate_key("P-256", private=True)
    foreign = await assertion_for(signing_service(issuer, other_key), token)
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=upstream()), base_url="http://up") as http:
        vouched = await http.get("/mcp", headers={"X-Auth-Assertion": assertion, "X-Auth-Subject": "mallory"})
        with caplog.at_level(logging.INFO, "mcp_auth_middleware"):
            plain = await http.get("/mcp", headers={"X-Auth-Subject": "mallory", "X-Auth-Scopes": "admin"})
            other = await http.get("/mcp", headers={"X-Auth-Assertion": foreign})
            twice = await http.get("/mcp", headers=[("X-Auth-Assertion", assertion), ("X-Auth-Assertion", assertion)])
            access_token = await http.get("/mcp", headers={"X-Auth-Assertion": token})  # not an assertion
        public = await http.get("/health")
    assert vouched.status_code == 200
    assert vouched.json() == {"sub": "alice", "client_id": "app-1", "scopes": ["mcp"], "issuer": ISSUER,
                              "user": True}  # fmt: skip
    for refused in (plain, other, twice, access_token):
        assert refused.status_code == 403 and refused.json()["error"] == "forbidden"
    assert public.status_code == 200
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "did not come through the gateway" in warnings[0].getMessage()
    assert token not in caplog.text and assertion not in caplog.text


async def test_keys_from_the_services_jwks_uri(issuer: LocalIssuer) -> None:
    service = signing_service(issuer)
    token = issuer.mint_token(audience=RESOURCE, sub="bob", scopes=["mcp"])
    assertion = await assertion_for(service, token)
    with serve(service, proxy_headers=False) as url:
        app = upstream(keys=None, jwks_uri=f"{url}/.well-known/jwks.json")
        async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://up") as http:
            answer = await http.get("/mcp", headers={"X-Auth-Assertion": assertion})
    assert answer.status_code == 200 and answer.json()["sub"] == "bob"


def test_keys_or_a_jwks_uri_one_of_them() -> None:
    with pytest.raises(ValueError, match="keys= or its jwks_uri="):
        CallerFromGateway(Starlette(), issuer=RESOURCE)


async def test_through_nginx_a_forgotten_line_fools_the_headers_not_the_assertion(tmp_path: Path) -> None:
    port = free_port()
    resource = f"http://127.0.0.1:{port}/mcp"
    mcp = FastMCP("verifies")

    @mcp.tool
    def whoami() -> dict[str, Any]:
        """The caller from the assertion, and the plain header as it arrived."""
        from fastmcp.server.dependencies import get_http_request

        info = get_auth()
        return {"sub": info.sub if info else None, "plain": get_http_request().headers.get("x-auth-subject")}

    with running_authorization_server(scopes_supported=["mcp"], default_resource=resource) as server:
        service = GatewayService(
            gateway="nginx", resource=resource, issuer=server.issuer, assertion_key=KEY.as_pem(private=True).decode()
        )
        app = CallerFromGateway(mcp.http_app(stateless_http=True), issuer=resource, keys=service.identity.jwks)
        token = server.mint_token(sub="alice", scopes=["mcp"], audience=resource)
        with serve(service, proxy_headers=False) as auth, serve(app) as up:
            ports = [int(auth.rsplit(":", 1)[1])], int(up.rsplit(":", 1)[1])
            with nginx(tmp_path, port, *ports, drop=("proxy_set_header X-Auth-Subject",)):
                headers, body = modern_call("whoami")
                async with httpx2.AsyncClient(timeout=20) as http:
                    response = await http.post(
                        resource,
                        content=body,
                        headers={**headers, "Authorization": f"Bearer {token}", "X-Auth-Subject": "mallory"},
                    )
    assert response.status_code == 200, response.text
    seen = tool_result(response)
    assert seen["plain"] == "mallory"  # the forgotten line: the plain header is the client's
    assert seen["sub"] == "alice"  # the assertion's caller is not
