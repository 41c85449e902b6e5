"""Each example in examples/, run as a process the way its docstring says, against a local
authorization server like the demo's; called with the MCP SDK client or plain HTTP."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from mcp_auth_middleware.server import LocalAuthorizationServer
from mcp_auth_middleware.testing import free_port, running_authorization_server

pytestmark = pytest.mark.end_to_end

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="module")
def authorization_server() -> Iterator[LocalAuthorizationServer]:
    with running_authorization_server(user="demo-user", scopes_supported=["mcp", "repo:delete"]) as server:
        yield server


@contextlib.contextmanager
def example(name: str, issuer: str, path: str) -> Iterator[str]:
    """`python examples/NAME.py --port P --issuer ISSUER`; yields the protected URL."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MCP_AUTH_")}
    process = subprocess.Popen(
        [sys.executable, str(EXAMPLES / f"{name}.py"), "--port", str(port), "--issuer", issuer],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, process.communicate()[0]
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
            assert time.monotonic() < deadline, f"{name} did not start"
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}{path}"
    finally:
        process.terminate()
        process.wait(10)


@pytest.mark.parametrize("name", ["fastmcp_server", "mcp_sdk_server"])
async def test_mcp_examples(authorization_server: LocalAuthorizationServer, name: str) -> None:
    with example(name, authorization_server.issuer, "/mcp") as url:
        token = authorization_server.mint_token(sub="alice", scopes=["mcp"], audience=url, client_id="inspector")
        http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=10)
        async with Client(streamable_http_client(url, http_client=http)) as client:
            result = await client.call_tool("whoami", {})
        assert result.structured_content is not None
        assert result.structured_content["sub"] == "alice"
        assert result.structured_content["client_id"] == "inspector"
        async with httpx2.AsyncClient() as plain:
            assert (await plain.get(url.replace("/mcp", "/health"))).text == "ok"  # public
            assert (await plain.post(url, json={})).status_code == 401


@pytest.mark.parametrize("name", ["starlette_app", "fastapi_app"])
async def test_web_app_examples(authorization_server: LocalAuthorizationServer, name: str) -> None:
    with example(name, authorization_server.issuer, "/api") as url:
        token = authorization_server.mint_token(sub="bob", scopes=["mcp"], audience=url)
        async with httpx2.AsyncClient(timeout=10) as http:
            assert (await http.get(url.replace("/api", "/health"))).status_code == 200  # public
            assert (await http.get(url)).status_code == 401
            assert (await http.get(url, headers={"Authorization": f"Bearer {token}"})).json()["sub"] == "bob"
            if name == "fastapi_app":
                denied = await http.delete(f"{url}/repos/x", headers={"Authorization": f"Bearer {token}"})
                assert denied.status_code == 403 and 'scope="repo:delete"' in denied.headers["www-authenticate"]
                admin = authorization_server.mint_token(sub="root", scopes=["mcp", "repo:delete"], audience=url)
                allowed = await http.delete(f"{url}/repos/x", headers={"Authorization": f"Bearer {admin}"})
                assert allowed.json() == {"deleted": "x", "by": "root"}
                # FastAPI's interactive docs stay readable without a token (listed in public_paths).
                assert (await http.get(url.replace("/api", "/openapi.json"))).json()["paths"]
                assert (await http.get(url.replace("/api", "/docs"))).status_code == 200
