"""Every deployment shape on real uvicorn, driven by the MCP SDK client: outermost app, mounted
under a prefix (Starlette `Mount`, FastAPI `app.mount`), behind a reverse proxy with
`root_path`, and several MCP servers on one host, each with its own resource."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx2
import pytest
from fastapi import FastAPI
from fastmcp import Context, FastMCP
from mcp import Client
from mcp.client.auth.utils import (
    build_protected_resource_metadata_discovery_urls,
    extract_resource_metadata_from_www_auth,
)
from mcp.client.streamable_http import streamable_http_client
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route

from mcp_auth_middleware import MCPAuthMiddleware, get_auth
from mcp_auth_middleware.testing import LocalIssuer, free_port, serve

pytestmark = pytest.mark.end_to_end

ISSUER = LocalIssuer("https://auth.example.com")


def protected(name: str, resource: str) -> MCPAuthMiddleware:
    """A FastMCP server with one tool, wrapped; its endpoint is at /mcp inside the app."""
    mcp = FastMCP(name)

    @mcp.tool
    async def whoami(ctx: Context) -> dict[str, Any]:
        auth = get_auth(ctx)
        assert auth is not None
        return {"server": name, "sub": auth.sub, "audience": list(auth.audience)}

    return MCPAuthMiddleware(
        mcp.http_app(path="/mcp"),
        resource=resource,
        authorization_servers=[ISSUER.issuer],
        validator=ISSUER.validator(),
    )


async def call_whoami(url: str, token: str) -> dict[str, Any]:
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=10)
    async with Client(streamable_http_client(url, http_client=http)) as client:
        result = await client.call_tool("whoami", {})
    assert result.structured_content is not None
    return result.structured_content


async def assert_discovery_works(url: str) -> None:
    """What the MCP SDK client does after a 401: the header URL, then the path-inserted and
    root well-known URLs (RFC 9728 §3.1, §5.1); each that it tries must name this resource."""
    async with httpx2.AsyncClient(timeout=10) as http:
        challenge = await http.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
        assert challenge.status_code == 401
        header_url = extract_resource_metadata_from_www_auth(challenge)
        assert header_url is not None
        for metadata_url in build_protected_resource_metadata_discovery_urls(header_url, url)[:2]:
            document = await http.get(metadata_url)
            assert document.status_code == 200, metadata_url
            assert document.json()["resource"] == url


@contextlib.contextmanager
def shape(build: Callable[[int], tuple[Any, str]]) -> Iterator[str]:
    port = free_port()
    app, url = build(port)
    with serve(app, port=port):
        yield url


def outermost(port: int) -> tuple[Any, str]:
    url = f"http://127.0.0.1:{port}/mcp"
    return protected("outermost", url), url


def starlette_mount(port: int) -> tuple[Any, str]:
    url = f"http://127.0.0.1:{port}/api/mcp"
    auth = protected("starlette-mount", url)
    return Starlette(routes=[*auth.well_known_routes(), Mount("/api", app=auth)], lifespan=auth.lifespan), url


def fastapi_mount(port: int) -> tuple[Any, str]:
    url = f"http://127.0.0.1:{port}/api/mcp"
    auth = protected("fastapi-mount", url)
    app = FastAPI(lifespan=auth.lifespan)
    app.router.routes.extend(auth.well_known_routes())
    app.mount("/api", auth)
    return app, url


@pytest.mark.parametrize("build", [outermost, starlette_mount, fastapi_mount])
async def test_each_shape_serves_tools_and_discovery(build: Callable[[int], tuple[Any, str]]) -> None:
    with shape(build) as url:
        identity = await call_whoami(url, ISSUER.mint_token(audience=url, sub="alice"))
        assert identity["sub"] == "alice" and identity["audience"] == [url]  # lifespan reached FastMCP
        await assert_discovery_works(url)


def test_mounted_without_the_well_known_routes_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/api/mcp"
    auth = protected("forgotten", url)
    with serve(Starlette(routes=[Mount("/api", app=auth)], lifespan=auth.lifespan), port=port):
        for _ in range(3):
            assert httpx2.post(url, json={}).status_code == 401
        assert httpx2.get(f"http://127.0.0.1:{port}/.well-known/oauth-protected-resource/api/mcp").status_code == 404
    warnings = [r.getMessage() for r in caplog.records if "is mounted under" in r.getMessage()]
    assert len(warnings) == 1  # at startup, once
    # Both steps in one line: the routes, and our lifespan (FastMCP's own error would suggest
    # its app's lifespan, which skips this middleware's startup check).
    assert "add *middleware.well_known_routes() to its routes and pass lifespan=middleware.lifespan" in warnings[0]


def test_mounted_with_the_well_known_routes_does_not_warn(caplog: pytest.LogCaptureFixture) -> None:
    with shape(starlette_mount) as url:
        assert httpx2.post(url, json={}).status_code == 401
    assert not [r for r in caplog.records if "is mounted under" in r.getMessage()]


# -- Behind a reverse proxy that strips a prefix (uvicorn --root-path) ------------------------


def stripping_proxy(backend: str, prefix: str) -> Starlette:
    """A small reverse proxy: /prefix/... to the backend's /..., the well-known URLs as they are."""
    client = httpx2.AsyncClient(base_url=backend, timeout=10)

    async def forward(request: Request) -> Response:
        path = request.url.path
        target = path[len(prefix) :] if path.startswith(prefix + "/") else path
        headers = [(k, v) for k, v in request.headers.raw if k.lower() not in (b"host", b"content-length")]
        upstream = await client.request(
            request.method, target, content=await request.body(), headers=headers, params=request.query_params
        )
        dropped = ("content-length", "transfer-encoding", "content-encoding", "connection")
        return Response(
            upstream.content,
            status_code=upstream.status_code,
            headers={k: v for k, v in upstream.headers.items() if k.lower() not in dropped},
        )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await client.aclose()

    return Starlette(
        routes=[Route("/{path:path}", forward, methods=["GET", "POST", "DELETE", "OPTIONS"])], lifespan=lifespan
    )


async def test_behind_a_proxy_with_root_path() -> None:
    public_port, backend_port = free_port(), free_port()
    url = f"http://127.0.0.1:{public_port}/prefix/mcp"
    backend = protected("proxied", url)
    with (
        serve(backend, port=backend_port, root_path="/prefix"),
        serve(stripping_proxy(f"http://127.0.0.1:{backend_port}", "/prefix"), port=public_port),
    ):
        identity = await call_whoami(url, ISSUER.mint_token(audience=url, sub="bob"))
        assert identity["sub"] == "bob"
        await assert_discovery_works(url)


# -- Several MCP servers on one host -----------------------------------------------------------


async def test_several_servers_on_one_host_each_with_its_own_resource() -> None:
    port = free_port()
    url_a, url_b = f"http://127.0.0.1:{port}/a/mcp", f"http://127.0.0.1:{port}/b/mcp"
    a, b = protected("a", url_a), protected("b", url_b)

    @contextlib.asynccontextmanager
    async def both(app: Starlette) -> AsyncIterator[None]:
        async with a.lifespan(app), b.lifespan(app):
            yield

    app = Starlette(
        routes=[*a.well_known_routes(), *b.well_known_routes(include_root=False), Mount("/a", a), Mount("/b", b)],
        lifespan=both,
    )
    with serve(app, port=port):
        token_a = ISSUER.mint_token(audience=url_a, sub="carol")
        assert (await call_whoami(url_a, token_a))["server"] == "a"
        assert (await call_whoami(url_b, ISSUER.mint_token(audience=url_b)))["server"] == "b"
        async with httpx2.AsyncClient() as http:
            refused = await http.post(url_b, json={}, headers={"Authorization": f"Bearer {token_a}"})
            assert refused.status_code == 401  # a token for /a is not one for /b
            for url in (url_a, url_b):
                challenge = await http.post(url, json={})
                metadata_url = extract_resource_metadata_from_www_auth(challenge)
                assert metadata_url is not None
                assert (await http.get(metadata_url)).json()["resource"] == url
            root = await http.get(f"http://127.0.0.1:{port}/.well-known/oauth-protected-resource")
            assert root.json()["resource"] == url_a  # the root URL belongs to one resource at most
