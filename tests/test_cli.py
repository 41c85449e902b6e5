"""The CLI: check and discover against a real local authorization server; the demo's wiring."""

from __future__ import annotations

import subprocess
import sys

import httpx2
import pytest

from mcp_auth_middleware.cli import main
from mcp_auth_middleware.demo import demo_stack, instructions
from mcp_auth_middleware.testing import free_port, running_authorization_server, serve

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


def test_check_explains_the_denial(capsys: pytest.CaptureFixture[str]) -> None:
    with running_authorization_server() as server:
        token = server.mint_token(sub="dana", audience="https://other.example/mcp")
        assert main(["check", token, "--resource", RESOURCE, "--issuer", server.issuer]) == 1
    out = capsys.readouterr().out
    assert "why:   The access token was not issued for this resource: audience 'https://other.example/mcp'" in out


def test_check_without_a_token_checks_the_configuration(capsys: pytest.CaptureFixture[str]) -> None:
    with running_authorization_server() as server:
        assert main(["check", "--resource", RESOURCE, "--issuer", server.issuer]) == 0
        assert capsys.readouterr().out.startswith("OK  ")
        assert main(["check", "--resource", RESOURCE, "--issuer", server.issuer + "/"]) == 2
        out = capsys.readouterr().out
        assert out.startswith("MISCONFIGURED  ") and "differ only in a trailing slash" in out
    assert main(["check", "--resource", RESOURCE, "--issuer", f"http://127.0.0.1:{free_port()}"]) == 3
    assert capsys.readouterr().out.startswith("UNREACHABLE  ")
    assert main(["check", "--resource", "http://mcp.example.com/mcp", "--issuer", "https://as.example"]) == 2
    assert "plain http" in capsys.readouterr().err


def test_check_with_introspection(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    with running_authorization_server(token_format="opaque") as server:
        server.register_resource_server("rs", "rs-secret", [RESOURCE])
        token = server.mint_token(sub="erin", audience=RESOURCE)
        options = ["--resource", RESOURCE, "--issuer", server.issuer, "--token-validation", "introspection"]
        monkeypatch.setenv("MCP_AUTH_CLIENT_SECRET", "rs-secret")
        assert main(["check", token, *options, "--client-id", "rs"]) == 0
        assert "ALLOW  sub=erin" in capsys.readouterr().out
        assert main(["check", *options, "--client-id", "rs", "--client-secret", "wrong"]) == 2
        assert "refused this resource server's client credentials" in capsys.readouterr().out


def test_discover(capsys: pytest.CaptureFixture[str]) -> None:
    with running_authorization_server() as server:
        assert main(["discover", server.issuer]) == 0
        captured = capsys.readouterr()
        assert f'"issuer": "{server.issuer}"' in captured.out and "missing:" not in captured.err
    assert main(["discover", f"http://127.0.0.1:{free_port()}"]) == 1


def test_discover_lists_what_mcp_clients_miss(capsys: pytest.CaptureFixture[str]) -> None:
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    document = {"issuer": issuer, "authorization_endpoint": f"{issuer}/a", "token_endpoint": f"{issuer}/t"}
    app = Starlette(routes=[Route("/.well-known/oauth-authorization-server", lambda r: JSONResponse(document))])
    with serve(app, port=port):
        assert main(["discover", issuer]) == 1
    err = capsys.readouterr().err
    assert "missing: code_challenge_methods_supported lacks S256" in err
    assert "missing: neither registration_endpoint (RFC 7591) nor client_id_metadata_document_supported" in err
    assert "missing: neither jwks_uri nor introspection_endpoint" in err


def test_demo_on_a_busy_port_is_one_clear_line() -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "mcp_auth_middleware.cli", "demo", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"mcp-oauth-middleware demo: port {port} on 127.0.0.1 is in use; choose others with --port and --as-port"
    )
    assert "Traceback" not in result.stderr


def test_demo_restarted_at_once_is_not_refused_for_its_last_connections() -> None:
    """A demo stopped a moment ago leaves its ports in TIME_WAIT, which uvicorn binds over; the
    busy-port check must not call them in use (here the other port is the busy one)."""
    import socket

    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn's listener has
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        lingering = listener.getsockname()[1]
        client = socket.create_connection(("127.0.0.1", lingering))
        accepted, _ = listener.accept()
        accepted.close()  # the server side closes first: its end of port `lingering` waits
        client.close()
    # The precondition: the port does linger, a bind without SO_REUSEADDR is refused.
    with socket.socket() as plain, pytest.raises(OSError, match="Address already in use"):
        plain.bind(("127.0.0.1", lingering))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "mcp_auth_middleware.cli", "demo", "--port", str(lingering), "--as-port", str(busy)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    assert f"port {busy} on 127.0.0.1 is in use" in result.stderr


def test_console_script_installed() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mcp_auth_middleware.cli", "--help"], capture_output=True, text=True, check=True
    )
    assert "demo" in result.stdout and "check" in result.stdout


async def test_demo_prints_one_line_per_request_with_the_decision(capsys: pytest.CaptureFixture[str]) -> None:
    with demo_stack(port=free_port(), as_port=free_port()) as stack:
        token = stack.authorization_server.mint_token(sub="demo-user", scopes=["mcp"], audience=stack.resource)
        async with httpx2.AsyncClient() as http:
            await http.get(f"{stack.issuer}/.well-known/oauth-authorization-server")
            await http.post(stack.resource, json={})
            await http.post(stack.resource, json={}, headers={"Authorization": "Bearer nope"})
            call = {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "tools/call",
                "params": {"name": "delete_notes", "arguments": {}},
            }
            await http.post(stack.resource, json=call, headers={"Authorization": f"Bearer {token}"})
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith(("AS ", "MCP "))]
    # At startup the MCP server checks its configuration: it fetches the AS metadata and keys.
    assert lines == [
        "AS   GET /.well-known/oauth-authorization-server -> 200",
        "AS   GET /jwks -> 200",
        "AS   GET /.well-known/oauth-authorization-server -> 200",
        "MCP  POST /mcp -> 401  no bearer token",
        "MCP  POST /mcp -> 401  The access token is malformed",
        "MCP  POST /mcp -> 403  The access token lacks a required scope: "
        "scope notes:admin missing for tools/call delete_notes",
    ]


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


async def test_demo_advertises_the_same_scopes_on_both_sides() -> None:
    # What the resource server challenges for is what the authorization server offers.
    with demo_stack(port=free_port(), as_port=free_port()) as stack:
        async with httpx2.AsyncClient() as http:
            resource = (
                await http.get(stack.resource.replace("/mcp", "/.well-known/oauth-protected-resource/mcp"))
            ).json()
            server = (await http.get(f"{stack.issuer}/.well-known/oauth-authorization-server")).json()
    assert sorted(resource["scopes_supported"]) == sorted(server["scopes_supported"])
    assert server["client_id_metadata_document_supported"] is True
