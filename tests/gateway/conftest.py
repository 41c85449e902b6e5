"""Real gateways in front of a FastMCP server: nginx and Caddy from Debian's packages, started
with the configurations docs/gateways.md shows (only ports changed), the authorization service
on uvicorn (in process, or as the CLI's subprocesses), and the local authorization server.
A gateway that is not installed fails the tests: `make test` installs both."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastmcp import FastMCP
from fastmcp.server.dependencies import get_http_request

from mcp_auth_middleware.gateway import GatewayService
from mcp_auth_middleware.server.local import LocalAuthorizationServer
from mcp_auth_middleware.testing import free_port, running_authorization_server, serve

from ..processes import stop_process, wait_for_port

ROOT = Path(__file__).resolve().parents[2]
GATEWAYS_DOC = ROOT / "docs" / "gateways.md"
IDENTITY = ("x-auth-subject", "x-auth-client-id", "x-auth-scopes", "x-auth-issuer", "x-auth-assertion")
SCOPES = ["mcp", "notes:read", "notes:delete"]
TOOL_SCOPES = {"delete_notes": ["notes:delete"]}


def documented_config(language: str) -> str:
    """The one block in `language` in docs/gateways.md: the configuration the tests run."""
    found = re.findall(rf"^```{language}\n(.*?)^```", GATEWAYS_DOC.read_text(), re.S | re.M)
    assert len(found) == 1, f"docs/gateways.md should show one {language} configuration"
    return str(found[0])


def upstream_app() -> Any:
    """A FastMCP server that trusts the gateway: its tools report the identity headers."""
    mcp = FastMCP("behind a gateway")

    @mcp.tool
    def whoami() -> dict[str, str | None]:
        """The identity headers this request arrived with."""
        headers = get_http_request().headers
        return {name: headers.get(name) for name in IDENTITY}

    @mcp.tool
    def delete_notes() -> str:
        """Needs notes:delete (decided by the gateway's service)."""
        return "deleted"

    return mcp.http_app(stateless_http=True)


def _binary(name: str) -> str:
    found = shutil.which(name) or (f"/usr/sbin/{name}" if Path(f"/usr/sbin/{name}").exists() else None)
    if found is None:
        pytest.fail(f"{name} is not installed: `make test` installs Debian's {name}")
    return found


@contextmanager
def _process(command: list[str], port: int, what: str, log: Path, **options: Any) -> Iterator[None]:
    with log.open("wb") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, **options)
        try:
            try:
                wait_for_port(port, process, what)
            except BaseException:
                print(log.read_text(errors="replace")[-3000:])
                raise
            yield
        finally:
            stop_process(process)


@contextmanager
def nginx(
    directory: Path, port: int, auth_ports: list[int], upstream_port: int, extra: str = "", http_level: str = ""
) -> Iterator[None]:
    """nginx with the documented configuration; `extra` goes into `location /mcp`, `http_level`
    into `http` (what tests observe with, never what they test)."""
    config = documented_config("nginx")
    servers = "\n".join(f"        server 127.0.0.1:{p};" for p in auth_ports)
    config = config.replace("        server 127.0.0.1:9100;", servers)
    config = config.replace("127.0.0.1:8000", f"127.0.0.1:{upstream_port}")
    config = config.replace("listen 8080;", f"listen 127.0.0.1:{port};")
    config = config.replace("            auth_request /_mcp_auth;\n", f"            auth_request /_mcp_auth;\n{extra}")
    config = config.replace("http {\n", f"http {{\n{http_level}")
    (directory / "logs").mkdir(parents=True, exist_ok=True)
    (directory / "nginx.conf").write_text(config)
    globals_ = f"daemon off; worker_processes 1; pid {directory}/nginx.pid; error_log {directory}/error.log;"
    if os.geteuid() == 0:
        globals_ += " user root;"  # workers can write the temporary files under the test's directory
    command = [_binary("nginx"), "-p", str(directory), "-c", str(directory / "nginx.conf"), "-g", globals_]
    with _process(command, port, "nginx", directory / "output.log"):
        yield


@contextmanager
def caddy(directory: Path, port: int, auth_port: int, upstream_port: int) -> Iterator[None]:
    config = documented_config("caddyfile")
    config = config.replace("127.0.0.1:9100", f"127.0.0.1:{auth_port}")
    config = config.replace("127.0.0.1:8000", f"127.0.0.1:{upstream_port}")
    config = config.replace(":8080 {", f":{port} {{\n\tbind 127.0.0.1")
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "Caddyfile").write_text(config)
    env = {**os.environ, "HOME": str(directory), "XDG_DATA_HOME": str(directory), "XDG_CONFIG_HOME": str(directory)}
    command = [_binary("caddy"), "run", "--config", str(directory / "Caddyfile"), "--adapter", "caddyfile"]
    with _process(command, port, "caddy", directory / "output.log", env=env):
        yield


@dataclass
class GatewayStack:
    kind: str
    resource: str
    authorization_server: LocalAuthorizationServer
    service: GatewayService


@contextmanager
def gateway_stack(kind: str, directory: Path) -> Iterator[GatewayStack]:
    """The authorization server, FastMCP, the service (in process) and `kind` in front."""
    port = free_port()
    resource = f"http://127.0.0.1:{port}/mcp"
    with ExitStack() as stack:
        server = stack.enter_context(
            running_authorization_server(user="demo-user", scopes_supported=SCOPES, default_resource=resource)
        )
        service = GatewayService(
            gateway=kind,
            resource=resource,
            issuer=server.issuer,
            required_scopes=["mcp"],
            tool_scopes=TOOL_SCOPES,
        )
        upstream = stack.enter_context(serve(upstream_app()))
        auth = stack.enter_context(serve(service, proxy_headers=False))
        auth_port, upstream_port = int(auth.rsplit(":", 1)[1]), int(upstream.rsplit(":", 1)[1])
        if kind == "nginx":
            stack.enter_context(nginx(directory, port, [auth_port], upstream_port))
        else:
            stack.enter_context(caddy(directory, port, auth_port, upstream_port))
        yield GatewayStack(kind, resource, server, service)
