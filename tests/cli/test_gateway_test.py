"""`mcp-oauth-middleware gateway-test` against real nginx and Caddy, configured as
docs/gateways.md shows and with a line forgotten: it finds the identity header (or look-alike)
a client can send to the upstream, and names the line that is missing."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import pytest

from mcp_auth_middleware.cli import main
from mcp_auth_middleware.gateway import GatewayService
from mcp_auth_middleware.server.local import LocalAuthorizationServer
from mcp_auth_middleware.testing import free_port, running_authorization_server, serve

from ..gateway.conftest import caddy, nginx

pytestmark = pytest.mark.end_to_end


@pytest.fixture(scope="module")
def authorization_server() -> Iterator[LocalAuthorizationServer]:
    with running_authorization_server(scopes_supported=["mcp"]) as server:
        yield server


def front(
    kind: str, directory: Path, port: int, auth_port: int, upstream_port: int, drop: tuple[str, ...]
) -> AbstractContextManager[None]:
    if kind == "nginx":
        return nginx(directory, port, [auth_port], upstream_port, drop=drop)
    return caddy(directory, port, auth_port, upstream_port, drop=drop)


NGINX_FIX = "FORGED  X-Auth-Subject: the upstream saw the client's own value; add `proxy_set_header X-Auth-Subject"
CADDY_FIX = "FORGED  X-Auth-Subject: the upstream saw the client's own value; add `request_header -X-Auth-Subject`"
CASES = [
    ("nginx", (), 0, None),
    ("nginx", ("proxy_set_header X-Auth-Subject",), 1, NGINX_FIX),
    ("caddy", (), 0, None),
    ("caddy", ("request_header -X_Auth_*",), 1, "FORGED  X_Auth_Subject: the upstream saw this look-alike"),
    # Caddy's copy_headers overwrites what the removal misses: both lines gone, and a client names itself.
    ("caddy", ("request_header -X-Auth-*", "copy_headers"), 1, CADDY_FIX),
]


@pytest.mark.parametrize(("kind", "drop", "code", "said"), CASES)
def test_gateway_test_names_the_line_a_configuration_lacks(
    authorization_server: LocalAuthorizationServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    kind: str,
    drop: tuple[str, ...],
    code: int,
    said: str | None,
) -> None:
    port, upstream_port = free_port(), free_port()
    resource = f"http://127.0.0.1:{port}/mcp"
    service = GatewayService(gateway=kind, resource=resource, issuer=authorization_server.issuer)
    token = authorization_server.mint_token(sub="alice", scopes=["mcp"], audience=resource)
    command = ["gateway-test", resource, "--token", token, "--upstream-port", str(upstream_port), "--gateway", kind]
    with serve(service, proxy_headers=False) as auth, front(kind, tmp_path, port, int(auth.rsplit(":", 1)[1]),
                                                            upstream_port, drop):  # fmt: skip
        result = main(command)
    out = capsys.readouterr().out
    assert result == code, out
    if said is None:
        assert out.startswith("OK  none of the 10 identity headers a client sent")
    else:
        assert said in out


def test_gateway_test_says_why_it_could_not_test(
    authorization_server: LocalAuthorizationServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    port, upstream_port = free_port(), free_port()
    resource = f"http://127.0.0.1:{port}/mcp"
    service = GatewayService(gateway="nginx", resource=resource, issuer=authorization_server.issuer)
    with (
        serve(service, proxy_headers=False) as auth,
        nginx(tmp_path, port, [int(auth.rsplit(":", 1)[1])], upstream_port),
    ):
        refused = main(["gateway-test", resource, "--token", "not-a-token", "--upstream-port", str(upstream_port)])
        refused_err = capsys.readouterr().err
        with serve(service) as busy:
            busy_port = busy.rsplit(":", 1)[1]
            in_use = main(["gateway-test", resource, "--token", "t", "--upstream-port", busy_port])
            in_use_err = capsys.readouterr().err
    assert refused == 3 and "the gateway answered HTTP 401" in refused_err and "--token" in refused_err
    assert in_use == 3 and f"port {busy_port} is in use: stop the MCP server" in in_use_err
