"""RFC 8414 / OpenID Connect discovery against real servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mcp_auth_middleware import (
    AuthorizationServerUnavailableError,
    ConfigurationError,
    MCPAuthMiddleware,
    discover_authorization_server,
)
from mcp_auth_middleware.discovery import metadata_urls
from mcp_auth_middleware.testing import free_port, running_authorization_server, serve

from .conftest import asgi_client, bearer, echo_app


def test_url_order_for_issuer_with_and_without_path() -> None:
    assert metadata_urls("https://as.example") == [
        "https://as.example/.well-known/oauth-authorization-server",
        "https://as.example/.well-known/openid-configuration",
    ]
    assert metadata_urls("https://as.example/tenant/1") == [
        "https://as.example/.well-known/oauth-authorization-server/tenant/1",
        "https://as.example/.well-known/openid-configuration/tenant/1",
        "https://as.example/tenant/1/.well-known/openid-configuration",
    ]


class MetadataHost:
    def __init__(self, documents: dict[str, Any]) -> None:
        self.documents = documents
        self.hits: list[str] = []
        self.app = Starlette(routes=[Route("/{path:path}", self.handle)])

    async def handle(self, request: Request) -> Response:
        self.hits.append(request.url.path)
        document = self.documents.get(request.url.path)
        return JSONResponse(document) if document is not None else Response(status_code=404)


@pytest.fixture
def host() -> Iterator[tuple[MetadataHost, str]]:
    metadata = MetadataHost({})
    with serve(metadata.app) as base:
        yield metadata, base


async def test_oidc_appended_form_found_last(host: tuple[MetadataHost, str]) -> None:
    metadata, base = host
    issuer = f"{base}/realms/mcp"
    metadata.documents["/realms/mcp/.well-known/openid-configuration"] = {"issuer": issuer, "jwks_uri": "x"}
    document = await discover_authorization_server(issuer)
    assert document["jwks_uri"] == "x"
    assert metadata.hits == [
        "/.well-known/oauth-authorization-server/realms/mcp",
        "/.well-known/openid-configuration/realms/mcp",
        "/realms/mcp/.well-known/openid-configuration",
    ]


async def test_issuer_mismatch_is_a_configuration_error(host: tuple[MetadataHost, str]) -> None:
    # RFC 8414 §3.3: the document's issuer must be identical to the one asked for.
    metadata, base = host
    metadata.documents["/.well-known/oauth-authorization-server"] = {"issuer": "https://evil.example"}
    with pytest.raises(ConfigurationError) as error:
        await discover_authorization_server(base)
    assert f"names issuer 'https://evil.example', but the configured issuer is '{base}'" in str(error.value.detail)


@pytest.mark.parametrize(
    ("configured", "named", "hint"),
    [
        ("{base}/", "{base}", "differ only in a trailing slash"),
        ("{base}", "{base}/", "differ only in a trailing slash"),
        ("{localhost}", "{base}", "localhost and 127.0.0.1 are different names"),
    ],
)
async def test_issuer_lookalikes_say_what_differs(
    host: tuple[MetadataHost, str], configured: str, named: str, hint: str
) -> None:
    metadata, base = host
    names = {"base": base, "localhost": base.replace("127.0.0.1", "localhost")}
    metadata.documents["/.well-known/oauth-authorization-server"] = {"issuer": named.format(**names)}
    with pytest.raises(ConfigurationError) as error:
        await discover_authorization_server(configured.format(**names))
    assert hint in str(error.value.detail)


async def test_nothing_found_is_a_configuration_error(host: tuple[MetadataHost, str]) -> None:
    _, base = host
    with pytest.raises(ConfigurationError) as error:
        await discover_authorization_server(base)
    assert "no authorization server metadata" in str(error.value.detail) and "HTTP 404" in str(error.value.detail)


async def test_unreachable_is_an_outage_not_a_misconfiguration() -> None:
    with pytest.raises(AuthorizationServerUnavailableError) as error:
        await discover_authorization_server(f"http://127.0.0.1:{free_port()}")
    assert not isinstance(error.value, ConfigurationError)


async def test_one_line_form_discovers_jwks_and_validates() -> None:
    with running_authorization_server() as server:
        resource = "https://mcp.example.com/mcp"
        app = MCPAuthMiddleware(echo_app(), resource=resource, issuer=server.issuer)
        token = server.mint_token(sub="carol", audience=resource)
        async with asgi_client(app) as client:
            response = await client.post("/mcp", headers=bearer(token))
        assert response.json()["sub"] == "carol"


async def test_one_line_form_with_as_down_answers_503_then_recovers() -> None:
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    resource = "https://mcp.example.com/mcp"
    app = MCPAuthMiddleware(echo_app(), resource=resource, issuer=issuer)
    from mcp_auth_middleware.server import LocalAuthorizationServer

    server = LocalAuthorizationServer(issuer)
    token = server.mint_token(audience=resource)
    async with asgi_client(app) as client:
        down = await client.post("/mcp", headers=bearer(token))
        assert down.status_code == 503 and int(down.headers["retry-after"]) >= 1
        with serve(server.app, port=port):
            await asyncio.sleep(2.1)  # failed fetches are retried at most every 2 s
            up = await client.post("/mcp", headers=bearer(token))
    assert up.status_code == 200


def test_one_line_introspection_needs_credentials() -> None:
    with pytest.raises(ValueError, match="client_id"):
        MCPAuthMiddleware(
            echo_app(), resource="https://x/mcp", issuer="https://as.example", token_validation="introspection"
        )
    with pytest.raises(ValueError, match="token_validation"):
        MCPAuthMiddleware(echo_app(), resource="https://x/mcp", issuer="https://as.example", token_validation="magic")  # type: ignore[arg-type]


# -- Misconfiguration is not an outage ----------------------------------------------------------


async def test_issuer_with_a_trailing_slash_is_503_misconfigured_with_one_error_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with running_authorization_server() as server:
        resource = "https://mcp.example.com/mcp"
        app = MCPAuthMiddleware(echo_app(), resource=resource, issuer=server.issuer + "/")
        token = server.mint_token(audience=resource)
        async with asgi_client(app) as client:
            responses = [await client.post("/mcp", headers=bearer(token)) for _ in range(3)]
    for response in responses:
        assert response.status_code == 503
        assert "retry-after" not in response.headers  # waiting does not help
        assert response.json()["error"] == "server_misconfigured"
    errors = [r for r in caplog.records if r.levelno == logging.ERROR and r.name.startswith("mcp_auth_middleware")]
    assert len(errors) == 1, [r.getMessage() for r in errors]
    message = errors[0].getMessage()
    assert f"names issuer '{server.issuer}', but the configured issuer is '{server.issuer}/'" in message
    assert "they differ only in a trailing slash" in message


async def test_startup_check_logs_the_misconfiguration_before_any_request(caplog: pytest.LogCaptureFixture) -> None:
    with running_authorization_server() as server:
        wrong = server.issuer.replace("127.0.0.1", "localhost")
        app = MCPAuthMiddleware(echo_app(), resource="https://mcp.example.com/mcp", issuer=wrong)
        with serve(app):
            pass  # only startup and shutdown
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any("localhost and 127.0.0.1 are different names" in e for e in errors), errors


def test_strict_startup_refuses_to_start_when_misconfigured() -> None:
    with running_authorization_server() as server:
        app = MCPAuthMiddleware(
            echo_app(), resource="https://mcp.example.com/mcp", issuer=server.issuer + "/", strict_startup=True
        )
        with pytest.raises(RuntimeError, match="did not start"), serve(app, timeout=10):
            pass
        good = MCPAuthMiddleware(
            echo_app(), resource="https://mcp.example.com/mcp", issuer=server.issuer, strict_startup=True
        )
        with serve(good) as base:
            assert base.startswith("http://127.0.0.1:")


async def test_startup_check_with_the_authorization_server_down_still_starts(caplog: pytest.LogCaptureFixture) -> None:
    app = MCPAuthMiddleware(
        echo_app(),
        resource="https://mcp.example.com/mcp",
        issuer=f"http://127.0.0.1:{free_port()}",
        strict_startup=True,
    )
    with serve(app):
        pass  # an outage is not a misconfiguration: the server starts, requests get 503 + Retry-After
    assert any("could not check" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)


async def test_check_reports_introspection_credentials_refused() -> None:
    with running_authorization_server(token_format="opaque") as server:
        server.register_resource_server("rs", "right-secret", ["https://mcp.example.com/mcp"])
        options = {"resource": "https://mcp.example.com/mcp", "issuer": server.issuer, "client_id": "rs"}
        wrong = MCPAuthMiddleware(echo_app(), token_validation="introspection", client_secret="wrong", **options)
        right = MCPAuthMiddleware(echo_app(), token_validation="introspection", client_secret="right-secret", **options)
        problem = await wrong.check()
        assert await right.check() is None
    assert isinstance(problem, ConfigurationError)
    assert "refused this resource server's client credentials: HTTP 401" in str(problem.detail)
