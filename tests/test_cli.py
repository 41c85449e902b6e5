"""The CLI: check and discover against a real local authorization server; the demo's wiring."""

from __future__ import annotations

import subprocess
import sys

import httpx2
import pytest

from mcp_auth_middleware.cli import main
from mcp_auth_middleware.demo import demo_stack, instructions
from mcp_auth_middleware.testing import free_port, running_authorization_server

RESOURCE = "https://mcp.example.com/mcp"


def test_check_allows_and_denies_with_reasons(capsys: pytest.CaptureFixture[str]) -> None:
    with running_authorization_server() as server:
        token = server.mint_token(sub="dana", audience=RESOURCE)
        assert main(["check", token, "--resource", RESOURCE, "--issuer", server.issuer]) == 0
        assert "ALLOW  sub=dana" in capsys.readouterr().out
        assert main(["check", token, "--resource", "https://other.example/mcp", "--issuer", server.issuer]) == 1
        out = capsys.readouterr().out
        assert "DENY   HTTP 401" in out and "not issued for this resource" in out
        assert main(["check", token, "--resource", RESOURCE, "--issuer", server.issuer, "--scope", "admin"]) == 1
        assert 'error="insufficient_scope"' in capsys.readouterr().out


def test_discover(capsys: pytest.CaptureFixture[str]) -> None:
    with running_authorization_server() as server:
        assert main(["discover", server.issuer]) == 0
        assert f'"issuer": "{server.issuer}"' in capsys.readouterr().out
    assert main(["discover", f"http://127.0.0.1:{free_port()}"]) == 1


def test_console_script_installed() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mcp_auth_middleware.cli", "--help"], capture_output=True, text=True, check=True
    )
    assert "demo" in result.stdout and "check" in result.stdout


async def test_demo_prints_a_working_token_and_command() -> None:
    with demo_stack(port=free_port(), as_port=free_port()) as stack:
        token = stack.authorization_server.mint_token(sub="demo-user", scopes=["mcp"], audience=stack.resource)
        text = instructions(stack, token)
        assert token in text and "curl -s " + stack.resource in text
        async with httpx2.AsyncClient() as http:
            response = await http.post(
                stack.resource,
                json={"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "whoami", "arguments": {}}},
                headers={"Authorization": f"Bearer {token}", "Accept": "application/json, text/event-stream"},
            )
        assert response.status_code == 200 and '\\"sub\\":\\"demo-user\\"' in response.text


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    from importlib.metadata import version

    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"mcp-oauth-middleware {version('mcp-oauth-middleware')}"
