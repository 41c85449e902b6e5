"""Real gateways in front of a FastMCP server: nginx and Caddy from Debian's packages, started
with the configurations docs/gateways.md shows (only ports changed), the authorization service
on uvicorn (in process, or as the CLI's subprocesses), and the local authorization server.
A gateway that is not installed fails the tests: `make test` installs both."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastmcp import FastMCP
from fastmcp.server.dependencies import get_http_request
from mcp.server.mcpserver import Context, MCPServer

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


#: What each upstream's tools did, by tool name: a request the gateway let through that ran a
#: tool the caller may not call shows here.
CALLS: list[str] = []
#: The method and path of every request that reached an upstream.
UPSTREAM_REQUESTS: list[tuple[str, str]] = []
#: The MCP protocol version whose servers check Mcp-Method and Mcp-Name against the body.
MODERN = "2026-07-28"


def _caller_headers(headers: Any) -> dict[str, Any]:
    """The identity headers a request reached the upstream with, and the names of any
    look-alikes (`X_Auth_Subject`) that a CGI-style server would fold into the same variable."""
    seen: dict[str, Any] = {name: headers.get(name) for name in IDENTITY}
    seen["look_alikes"] = sorted(
        name for name in headers if name.replace("_", "-") in IDENTITY and name not in IDENTITY
    )
    return seen


def delete_notes() -> str:
    """Needs notes:delete (decided by the gateway's service)."""
    CALLS.append("delete_notes")
    return "deleted"


def _without(config: str, drop: tuple[str, ...]) -> str:
    kept = [line for line in config.splitlines(keepends=True) if not any(text in line for text in drop)]
    assert len(kept) == len(config.splitlines()) - len(drop), "each dropped text is on one line of the configuration"
    return "".join(kept)


def upstream_app(kind: str = "fastmcp") -> Any:
    """An MCP server that trusts the gateway (FastMCP, or the MCP SDK's `MCPServer`): `whoami`
    reports the identity headers, `delete_notes` (notes:delete, decided by the gateway's
    service) is recorded in CALLS when it runs."""
    if kind == "fastmcp":
        mcp = FastMCP("behind a gateway")

        @mcp.tool
        def whoami() -> dict[str, Any]:
            """The identity headers this request arrived with."""
            return _caller_headers(get_http_request().headers)

        mcp.tool(delete_notes)
        return _recorded(mcp.http_app(stateless_http=True))
    server = MCPServer("behind a gateway")

    @server.tool()
    def whoami(ctx: Context) -> dict[str, Any]:  # type: ignore[type-arg]
        """The identity headers this request arrived with."""
        return _caller_headers(ctx.request_context.request.headers)

    server.tool()(delete_notes)
    return _recorded(server.streamable_http_app(stateless_http=True))


def _recorded(app: Any) -> Any:
    async def recorded(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            UPSTREAM_REQUESTS.append((scope["method"], scope["path"]))
        await app(scope, receive, send)

    return recorded


def modern_call(tool: str, request_id: int = 1, *, name: str | None = None) -> tuple[dict[str, str], str]:
    """A tools/call as an MCP 2026-07-28 client sends it (headers, body); `name` puts another
    tool in `Mcp-Name` than the body calls."""
    meta = {"io.modelcontextprotocol/protocolVersion": MODERN, "io.modelcontextprotocol/clientCapabilities": {}}
    params = {"name": tool, "arguments": {}, "_meta": meta}
    body = {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params}
    headers = {
        "Accept": "application/json, text/event-stream",
        "Content-Type": "application/json",
        "MCP-Protocol-Version": MODERN,
        "Mcp-Method": "tools/call",
        "Mcp-Name": name or tool,
    }
    return headers, json.dumps(body)


def tool_result(response: Any) -> Any:
    """The structured result of a tools/call answered as JSON or as an event stream."""
    text = response.text
    if response.headers["content-type"].startswith("text/event-stream"):
        text = next(line[5:] for line in text.splitlines() if line.startswith("data:"))
    return json.loads(text)["result"]["structuredContent"]


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
    directory: Path,
    port: int,
    auth_ports: list[int],
    upstream_port: int,
    extra: str = "",
    http_level: str = "",
    drop: tuple[str, ...] = (),
) -> Iterator[None]:
    """nginx with the documented configuration; `extra` goes into `location /mcp`, `http_level`
    into `http` (what tests observe with, never what they test); the lines holding any of
    `drop` are left out (a configuration line a user forgot)."""
    config = _without(documented_config("nginx"), drop)
    servers = "\n".join(f"        server 127.0.0.1:{p};" for p in auth_ports)
    config = config.replace("        server 127.0.0.1:9100;", servers)
    config = config.replace("127.0.0.1:8100", f"127.0.0.1:{upstream_port}")
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
def caddy(directory: Path, port: int, auth_port: int, upstream_port: int, drop: tuple[str, ...] = ()) -> Iterator[None]:
    config = _without(documented_config("caddyfile"), drop)
    config = config.replace("127.0.0.1:9100", f"127.0.0.1:{auth_port}")
    config = config.replace("127.0.0.1:8100", f"127.0.0.1:{upstream_port}")
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
    #: The address and port of each subrequest the service got: one port for many requests
    #: means the gateway kept its connection open.
    peers: list[tuple[str, int]] = field(default_factory=list)


@contextmanager
def gateway_stack(kind: str, directory: Path, upstream: str = "fastmcp") -> Iterator[GatewayStack]:
    """The authorization server, an MCP server (`upstream`: fastmcp or mcp-sdk), the service
    (in process) and `kind` in front."""
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
        running = GatewayStack(kind, resource, server, service)

        async def recorded(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] == "http" and scope["path"] == "/check":
                running.peers.append(scope["client"])
            await service(scope, receive, send)

        upstream_url = stack.enter_context(serve(upstream_app(upstream)))
        auth = stack.enter_context(serve(recorded, proxy_headers=False))
        auth_port, upstream_port = int(auth.rsplit(":", 1)[1]), int(upstream_url.rsplit(":", 1)[1])
        if kind == "nginx":
            stack.enter_context(nginx(directory, port, [auth_port], upstream_port))
        else:
            stack.enter_context(caddy(directory, port, auth_port, upstream_port))
        yield running
