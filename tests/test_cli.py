"""The CLI: check and discover against a real local authorization server; the demo's wiring."""

from __future__ import annotations

import asyncio
import os
import socket
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
        verdict = captured.err.strip().splitlines()[-1]
        assert verdict.startswith(f"OK  {server.issuer}: MCP clients can register (registration (RFC 7591))")
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
    assert err.strip().splitlines()[-1] == f"NOT READY  {issuer}: 3 thing(s) missing above"


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
        "scope notes:delete missing for tools/call delete_notes",
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


def run_cli(*args: str, prelude: str = "") -> subprocess.CompletedProcess[str]:
    """The command as a user runs it, in its own process (`prelude` can hide a package)."""
    code = f"{prelude}\nimport sys\nfrom mcp_auth_middleware.cli import main\nsys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=60)


def test_demo_without_its_extra_names_the_extra() -> None:
    """`pip install mcp-oauth-middleware` then `mcp-oauth-middleware demo`: one line, no traceback."""
    result = run_cli(
        "demo",
        "--port",
        str(free_port()),
        "--as-port",
        str(free_port()),
        prelude="import sys; sys.modules['fastmcp'] = None",
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "mcp-oauth-middleware demo: needs fastmcp: pip install 'mcp-oauth-middleware[demo]'"
    )
    with socket.socket() as busy:  # the extra is named first: a free port is no use without it
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = str(busy.getsockname()[1])
        result = run_cli("demo", "--port", port, prelude="import sys; sys.modules['fastmcp'] = None")
    assert result.returncode == 2 and "pip install 'mcp-oauth-middleware[demo]'" in result.stderr


def test_a_redis_storage_without_its_client_names_the_extra() -> None:
    code = (
        "import sys; sys.modules['redis'] = None; sys.modules['coredis'] = None\n"
        "from mcp_auth_middleware import MCPAuthMiddleware\n"
        "MCPAuthMiddleware(object(), resource='https://mcp.example.com/mcp', issuer='https://a.example', "
        "rate_limit_storage='redis://127.0.0.1:6379')"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "ValueError: storage 'redis://127.0.0.1:6379' needs the redis client: pip install 'mcp-oauth-middleware[redis]'"
    )


def test_serve_without_uvicorn_names_the_extra() -> None:
    code = (
        "import sys; sys.modules['uvicorn'] = None\n"
        "from mcp_auth_middleware.testing import serve\n"
        "with serve(object()): pass"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "ModuleNotFoundError: serve() runs uvicorn, which is not installed: pip install 'mcp-oauth-middleware[server]'"
    )


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "::"])
def test_demo_on_a_host_that_is_not_loopback_is_one_line(host: str) -> None:
    result = run_cli("demo", "--host", host)
    assert result.returncode == 2
    assert result.stderr.startswith(f"mcp-oauth-middleware demo: --host {host} is not a loopback address")
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_every_demo_option_says_what_it_does() -> None:
    text = " ".join(run_cli("demo", "--help").stdout.split())
    assert "--host HOST loopback address to bind (default 127.0.0.1;" in text
    assert "--port PORT MCP server port (default 8000)" in text
    assert "--as-port AS_PORT authorization server port (default 9000)" in text
    assert "--token-format {jwt,opaque} jwt: RFC 9068 access tokens" in text and "RFC 7662 introspection" in text


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("127.0.0.1:19000", "'127.0.0.1:19000' is not an absolute URL: write the scheme and host (https://...)"),
        ("ftp://x", "'ftp://x': only https URLs (plain http on loopback, or with allow_http)"),
        ("http://10.255.255.1:19000", "'http://10.255.255.1:19000' is plain http to a host that is not loopback"),
    ],
)
def test_discover_refuses_urls_in_one_line(url: str, message: str) -> None:
    result = run_cli("discover", url)
    assert result.returncode == 2
    assert result.stderr.startswith(f"mcp-oauth-middleware discover: {message}")
    assert "Traceback" not in result.stderr and "non-https" not in result.stderr


def test_discover_given_an_mcp_server_follows_its_metadata(capsys: pytest.CaptureFixture[str]) -> None:
    """A user passes the MCP server's URL: discover does what clients do, RFC 9728 first."""
    with demo_stack(port=free_port(), as_port=free_port()) as stack:
        assert main(["discover", stack.resource]) == 0
    captured = capsys.readouterr()
    assert f"{stack.resource} is a protected resource (RFC 9728); its authorization server is {stack.issuer}" in (
        captured.err
    )
    assert f'"issuer": "{stack.issuer}"' in captured.out


def test_check_on_a_private_network_over_plain_http(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--allow-http` and MCP_AUTH_ALLOW_HTTP=1 both let check through (its own refusal named them)."""
    args = ["check", "--resource", "http://mcp.internal/mcp", "--issuer", f"http://127.0.0.1:{free_port()}"]
    assert main(args) == 2
    assert "--allow-http" in capsys.readouterr().err
    assert main([*args, "--allow-http"]) == 3  # now it goes on, to an authorization server that is not there
    assert capsys.readouterr().out.startswith("UNREACHABLE  ")
    monkeypatch.setenv("MCP_AUTH_ALLOW_HTTP", "1")
    assert main(args) == 3
    monkeypatch.setenv("MCP_AUTH_ALLOW_HTTP", "maybe")
    assert main(args) == 2
    assert "MCP_AUTH_ALLOW_HTTP='maybe' is not a boolean" in capsys.readouterr().err


async def test_the_opaque_demo_prints_the_introspection_credentials() -> None:
    with demo_stack(port=free_port(), as_port=free_port(), token_format="opaque") as stack:
        token = stack.authorization_server.mint_token(sub="demo-user", scopes=["mcp"], audience=stack.resource)
        text = instructions(stack, token)
        async with httpx2.AsyncClient() as http:  # the credentials printed are the ones that work
            answer = await http.post(
                f"{stack.issuer}/introspect", data={"token": token}, auth=("demo-resource-server", "demo-secret")
            )
    assert 'client_id="demo-resource-server", client_secret="demo-secret"' in text
    assert f'issuer="{stack.issuer}", token_validation="introspection"' in text
    assert answer.json()["active"] is True


def test_the_demo_names_scopes_after_what_they_allow() -> None:
    """docs/per-tool-scopes.md, Naming scopes: no over-broad `admin` in what the demo advertises."""
    from mcp_auth_middleware.demo import build_demo

    stack = build_demo(port=free_port(), as_port=free_port())
    assert stack.mcp_app.metadata.document["scopes_supported"] == ["mcp", "notes:delete", "notes:read"]


def test_an_https_issuer_that_speaks_http_is_named_as_such(capsys: pytest.CaptureFixture[str]) -> None:
    """Not `[SSL: WRONG_VERSION_NUMBER]`: what was found, and the likely fix."""
    with running_authorization_server() as server:
        https = server.issuer.replace("http://", "https://")
        assert main(["check", "--resource", RESOURCE, "--issuer", https]) == 3
    out = capsys.readouterr().out
    port = https.rsplit(":", 1)[1]
    assert f"127.0.0.1:{port} answered in plain http where TLS was expected" in out
    assert "WRONG_VERSION_NUMBER" not in out


def test_a_jwks_uri_serving_html_is_named_as_such(capsys: pytest.CaptureFixture[str]) -> None:
    from starlette.applications import Starlette
    from starlette.responses import HTMLResponse
    from starlette.routing import Route

    page = Starlette(routes=[Route("/login", lambda r: HTMLResponse("<!doctype html><title>Sign in</title>"))])
    with running_authorization_server() as server, serve(page) as base:
        args = ["check", "--resource", RESOURCE, "--issuer", server.issuer, "--jwks-uri", f"{base}/login"]
        assert main(args) == 2
    out = capsys.readouterr().out
    assert f"{base}/login served text/html, not JSON: an HTML page" in out
    assert "JSONDecodeError" not in out


def test_examples_says_where_they_are_and_how_to_run_them(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["examples"]) == 0
    out = capsys.readouterr().out
    for name in ("fastmcp_server", "mcp_sdk_server", "starlette_app", "fastapi_app"):
        assert f"examples/{name}.py" in out
    assert "_options.py" not in out and "A FastMCP server protected by mcp-oauth-middleware in one line." in out
    # Which extra each needs: the FastAPI one fails under [demo] alone.
    assert "fastapi_app.py\n      A FastAPI app behind the middleware, with a per-route scope through a dependency.\n" \
        "      Needs: pip install 'mcp-oauth-middleware[fastapi,server]'" in out  # fmt: skip


def test_check_lists_names_a_rule_that_protects_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    """`check --lists` against the running server: the typo `delete_note` is found before deploying."""
    with demo_stack(port=free_port(), as_port=free_port()) as stack:
        token = stack.authorization_server.mint_token(sub="dana", scopes=["mcp"], audience=stack.resource)
        base = ["check", token, "--resource", stack.resource, "--issuer", stack.issuer, "--lists"]
        typo = main([*base, "--tool-scope", "delete_note=notes:delete", "--tool-scope", "read_notes=notes:read"])
        typo_out = capsys.readouterr().out
        right = main([*base, "--tool-scope", "delete_notes=notes:delete"])
        right_out = capsys.readouterr().out
    assert typo == 1
    assert "tools/list: whoami, add, read_notes, delete_notes" in typo_out
    assert (
        "RULE   tool_scopes names tool 'delete_note', which the server does not list: it protects nothing "
        "(did you mean 'delete_notes'?)"
    ) in typo_out
    assert right == 0 and "RULE" not in right_out


def test_check_lists_of_nothing_listening_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with running_authorization_server() as server:
        resource = f"http://127.0.0.1:{free_port()}/mcp"
        token = server.mint_token(audience=resource)
        code = main(["check", token, "--resource", resource, "--issuer", server.issuer, "--lists"])
    err = capsys.readouterr().err
    assert code == 3
    assert err.startswith(f"mcp-oauth-middleware check: could not list {resource}: ConnectError")
    assert "TaskGroup" not in err  # the cause, not the MCP SDK's wrapper


@pytest.mark.parametrize(
    ("args", "environ", "message"),
    [
        (
            ["--resource", "http://127.0.0.1:8080/mcp"],
            {},
            "--gateway (or MCP_AUTH_GATEWAY) is required: one of nginx, caddy, traefik, envoy",
        ),
        (["--gateway", "nginx"], {}, "--resource (or MCP_AUTH_RESOURCE) is required"),
        (
            ["--gateway", "caddy", "--resource", "http://127.0.0.1:8080/mcp", "--trusted-gateways", "gw.local"],
            {},
            "trusted_gateways: 'gw.local' is not an address or network",
        ),
        ([], {"MCP_AUTH_GATEWAY": "apache"}, "gateway must be one of nginx, caddy, traefik, envoy, not 'apache'"),
        (
            [],
            {"MCP_AUTH_GATEWAY": "nginx", "MCP_AUTH_TOOL_SCOPE": "delete_notes=notes:delete"},
            "unknown variable MCP_AUTH_TOOL_SCOPE (did you mean MCP_AUTH_TOOL_SCOPES?): nothing reads it",
        ),
        (
            [],
            {"MCP_AUTH_GATEWAY": "nginx", "MCP_AUTH_LOG_LEVEL": "loud"},
            "MCP_AUTH_LOG_LEVEL='loud' is not one of debug, info, warning, error",
        ),
    ],
)
def test_gateway_mistakes_are_one_line(
    args: list[str], environ: dict[str, str], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in [v for v in os.environ if v.startswith("MCP_AUTH_")]:
        monkeypatch.delenv(variable)
    for variable, value in {"MCP_AUTH_ISSUER": "http://127.0.0.1:9", **environ}.items():
        monkeypatch.setenv(variable, value)
    if "MCP_AUTH_GATEWAY" in environ:
        monkeypatch.setenv("MCP_AUTH_RESOURCE", "http://127.0.0.1:8080/mcp")
    result = run_cli("gateway", *args)
    assert result.returncode == 2
    assert result.stderr.strip() == f"mcp-oauth-middleware gateway: {message}"


def test_gateway_on_a_busy_port_says_so() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_cli(
            "gateway",
            "--gateway",
            "nginx",
            "--resource",
            "http://127.0.0.1:8080/mcp",
            "--issuer",
            "http://127.0.0.1:9",
            "--port",
            str(port),
        )
    assert result.returncode == 1
    assert f"port {port} on 127.0.0.1 is in use" in result.stderr and "Traceback" not in result.stderr


ENTRA_TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
ENTRA_V2 = f"https://login.microsoftonline.com/{ENTRA_TENANT}/v2.0"
ENTRA_APP = "6e74172b-be56-4843-9ff4-e66a39bb12e3"


def test_check_knows_the_provider_and_names_the_fix(capsys: pytest.CaptureFixture[str]) -> None:
    """Given a real (Entra-shaped) token, `check` says what is wrong and which setting fixes
    it, in the words the denial log uses."""
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from mcp_auth_middleware.testing import LocalIssuer

    issuer = LocalIssuer(ENTRA_V2)
    keys = Starlette(routes=[Route("/keys", lambda request: JSONResponse(issuer.jwks))])
    v1 = issuer.mint_token(audience=f"api://{ENTRA_APP}", iss=f"https://sts.windows.net/{ENTRA_TENANT}/", ver="1.0")
    v2 = issuer.mint_token(audience=ENTRA_APP, ver="2.0", tid=ENTRA_TENANT)
    with serve(keys) as url:
        common = ["--resource", "https://mcp.example.com/mcp", "--issuer", ENTRA_V2, "--jwks-uri", f"{url}/keys"]
        wrong_version = main(["check", v1, *common, "--audience", ENTRA_APP])
        version_out = capsys.readouterr().out
        no_audience = main(["check", v2, *common])
        audience_out = capsys.readouterr().out
        right = main(["check", v2, *common, "--audience", ENTRA_APP])
        right_out = capsys.readouterr().out
    assert wrong_version == 1 and "provider: Microsoft Entra ID" in version_out
    assert "a v1.0 token, and this resource expects v2.0 tokens: set accessTokenAcceptedVersion to 2" in version_out
    assert no_audience == 1 and f"Entra puts the app's client ID ({ENTRA_APP}) in aud" in audience_out
    assert "check --audience" in audience_out
    assert right == 0 and "ALLOW" in right_out


@pytest.mark.parametrize(
    ("used", "said"),
    [
        ("http://mcp.example.com/mcp", "scheme: clients use http, resource says https"),
        ("https://mcp.example.com:8443/mcp", "port: clients use 8443, resource says default"),
        ("https://mcp.example.com/mcp/", "trailing slash: clients use /mcp/, resource says /mcp"),
        ("https://mcp.example.com/api/mcp", "path: clients use /api/mcp, resource says /mcp"),
        ("https://mcp.internal/mcp", "host: clients use mcp.internal, resource says mcp.example.com"),
    ],
)
def test_check_compares_the_url_clients_use_with_the_resource(
    used: str, said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        ["check", "--resource", "https://mcp.example.com/mcp", "--issuer", "https://auth.example.com", "--url", used]
    )
    out = capsys.readouterr().out
    assert code == 2
    assert f"URL MISMATCH  clients use {used}, but resource is https://mcp.example.com/mcp" in out
    assert said in out


def test_check_audience_with_an_unusable_jwks_uri_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--resource", "https://mcp.example.com/mcp", "--issuer", "https://auth.example.com", "--audience", "x"]
    code = main(["check", "token", *args, "--jwks-uri", "http://auth.internal/jwks"])
    assert code == 2
    assert capsys.readouterr().err.startswith("INVALID CONFIGURATION  'http://auth.internal/jwks' is plain http")


def test_check_runs_the_cognito_recipe_and_names_an_id_token(capsys: pytest.CaptureFixture[str]) -> None:
    """Cognito's access tokens carry no aud: `check` takes the recipe's settings as flags."""
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from mcp_auth_middleware.testing import LocalIssuer

    cognito = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbCdEf123"
    issuer = LocalIssuer(cognito)
    keys = Starlette(routes=[Route("/keys", lambda request: JSONResponse(issuer.jwks))])
    access = issuer.mint_token(audience=None, client_id="5g0example7", token_use="access", scopes=["mcp/read"])
    id_token = issuer.mint_token(audience="5g0example7", token_use="id", nonce="n-1", typ="JWT")
    with serve(keys) as url:
        common = ["--resource", "https://mcp.example.com/mcp", "--issuer", cognito, "--jwks-uri", f"{url}/keys"]
        recipe = ["--no-audience", "--allowed-client", "5g0example7", "--required-claim", "token_use=access"]
        allowed = main(["check", access, *common, *recipe])
        allowed_out = capsys.readouterr().out
        by_default = main(["check", access, *common])
        default_out = capsys.readouterr().out
        id_denied = main(["check", id_token, *common])
        id_out = capsys.readouterr().out
        bad = main(["check", access, *common, "--no-audience", "--allowed-client", "x", "--required-claim", "oops"])
        bad_err = capsys.readouterr().err
    assert allowed == 0 and "ALLOW" in allowed_out and "client_id=5g0example7" in allowed_out
    assert by_default == 1 and "Cognito access tokens carry no aud" in default_out
    assert id_denied == 1 and "an ID token, not an access token" in id_out
    assert bad == 2 and "--required-claim 'oops': write NAME=VALUE" in bad_err


def test_token_signs_in_to_a_local_authorization_server_for_any_resource(capsys: pytest.CaptureFixture[str]) -> None:
    """The OAuth flow an MCP client runs (registration, PKCE, resource, iss), headless: the
    token is for the resource and scopes asked, verifiable with the server's keys."""
    from mcp_auth_middleware import JWTValidator
    from mcp_auth_middleware.testing import running_authorization_server

    downstream = "http://127.0.0.1:8001/api"
    with running_authorization_server(scopes_supported=["mcp", "tickets:read"]) as server:
        code = main(["token", "--issuer", server.issuer, "--resource", downstream, "--scope", "tickets:read"])
        out, err = capsys.readouterr()
        refused = main(["token", "--issuer", server.issuer, "--resource", downstream, "--scope", "tickets:write"])
        refused_err = capsys.readouterr().err
        validator = JWTValidator(issuer=server.issuer, audience=downstream, keys=server.key.as_dict(private=False))
        info = asyncio.run(validator.validate(out.strip()))
    assert code == 0 and out.count("\n") == 1  # the token alone on stdout
    assert f"a token for {downstream}, scope 'tickets:read'" in err
    assert info.scopes == {"tickets:read"} and info.audience == (downstream,)
    assert refused == 1 and "invalid_scope" in refused_err
    remote = main(["token", "--issuer", "https://auth.example.com", "--resource", downstream])
    assert remote == 2 and "is not on loopback" in capsys.readouterr().err


def test_every_command_and_option_says_what_it_is_for() -> None:
    """`--help` of each command: a description, and help for every option; the top-level help
    lists every command."""
    import argparse

    from mcp_auth_middleware.cli import COMMANDS, _Parser

    parser = _Parser(prog="mcp-oauth-middleware")
    commands = parser.add_subparsers(dest="command")
    for command in COMMANDS:
        command.add_parser(commands)
    top = run_cli("--help").stdout
    for name, sub in commands.choices.items():
        assert sub.description, f"{name} has no description"
        assert f"    {name}" in top, f"{name} is not in the top-level help"
        for action in sub._actions:
            if not isinstance(action, argparse._HelpAction):
                assert action.help, f"{name} {action.option_strings or action.dest} has no help"
    gateway = run_cli("gateway", "--help").stdout
    for words in ("pip install 'mcp-oauth-middleware[gateway]'", "MCP_AUTH_ALLOW_HTTP", "--log-level"):
        assert words in gateway


@pytest.mark.parametrize(
    ("args", "hint"),
    [
        (
            ["check", "--resouce", "https://mcp.example.com/mcp", "--issuer", "https://a.example"],
            "--resouce (did you mean --resource?)",
        ),
        (["gateway", "--gatway", "nginx"], "--gatway (did you mean --gateway?)"),
        (["token", "--resource", "x", "--scopes", "mcp"], "--scopes (did you mean --scope?)"),
    ],
)
def test_a_misspelled_option_names_the_one_meant(args: list[str], hint: str) -> None:
    result = run_cli(*args)
    assert result.returncode == 2 and hint in result.stderr
