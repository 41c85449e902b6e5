"""`mcp-oauth-middleware demo`: a local authorization server and a protected FastMCP server.

Everything binds 127.0.0.1. Needs the `demo` extra (FastMCP, uvicorn).
"""

from __future__ import annotations

import logging
import shlex
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Literal, TextIO

from fastmcp import Context, FastMCP
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .caller import get_auth
from .middleware import MCPAuthMiddleware
from .server.local import LocalAuthorizationServer

__all__ = ["DemoStack", "RequestLog", "build_demo", "demo_stack", "run_demo"]

TokenFormat = Literal["jwt", "opaque"]

#: Which scope unlocks which tool (every tool also needs the global "mcp" scope).
TOOL_SCOPES: dict[str, list[str]] = {
    "whoami": [],
    "add": [],
    "read_notes": ["notes:read"],
    "delete_notes": ["notes:delete"],
}
SCOPES = ["mcp", "notes:read", "notes:delete"]


#: The MCP server's credentials at the introspection endpoint (--token-format opaque).
INTROSPECTION_CLIENT = ("demo-resource-server", "demo-secret")


@dataclass
class DemoStack:
    authorization_server: LocalAuthorizationServer
    mcp_app: Any
    resource: str
    issuer: str
    token_format: TokenFormat = "jwt"


def build_demo(
    host: str = "127.0.0.1",
    port: int = 8000,
    as_port: int = 9000,
    token_format: TokenFormat = "jwt",
    access_token_ttl: int = 3600,
) -> DemoStack:
    issuer = f"http://{host}:{as_port}"
    resource = f"http://{host}:{port}/mcp"
    authorization_server = LocalAuthorizationServer(
        issuer,
        user="demo-user",
        token_format=token_format,
        scopes_supported=SCOPES,
        default_resource=resource,
        access_token_ttl=access_token_ttl,
    )
    authorization_server.register_resource_server(*INTROSPECTION_CLIENT, [resource])
    mcp = FastMCP("mcp-oauth-middleware demo")

    @mcp.tool
    async def whoami(ctx: Context) -> dict[str, Any]:
        """Who is calling: the identity from the verified access token."""
        auth = get_auth(ctx)
        assert auth is not None
        return {"sub": auth.sub, "client_id": auth.client_id, "scopes": sorted(auth.scopes)}

    @mcp.tool
    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    @mcp.tool
    def read_notes() -> list[str]:
        """Read the notes (needs notes:read)."""
        return ["buy milk", "ship the release"]

    @mcp.tool
    def delete_notes() -> str:
        """Delete all notes (needs notes:delete)."""
        return "deleted"

    validation: dict[str, Any] = {"issuer": issuer}
    if token_format == "opaque":
        client_id, client_secret = INTROSPECTION_CLIENT
        validation.update(token_validation="introspection", client_id=client_id, client_secret=client_secret)
    app = MCPAuthMiddleware(
        mcp.http_app(stateless_http=True),
        resource=resource,
        required_scopes=["mcp"],
        tool_scopes={tool: needs for tool, needs in TOOL_SCOPES.items() if needs},
        resource_name="mcp-oauth-middleware demo",
        log_allowed=True,  # the demo shows every decision, allowed ones too
        **validation,
    )
    return DemoStack(authorization_server, app, resource, issuer, token_format)


#: The decisions the middleware logs while one request runs (see RequestLog).
_decisions: ContextVar[list[str] | None] = ContextVar("demo_decisions", default=None)


class _Decisions(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        decisions, reason = _decisions.get(), getattr(record, "auth_reason", None)
        if decisions is not None and isinstance(reason, str):
            sub = getattr(record, "auth_sub", None)
            decisions.append(f"{reason} (sub {sub})" if sub else reason)


class RequestLog:
    """One line per request, so a newcomer watching the terminal sees the OAuth dance:
    `MCP  POST /mcp -> 401  no bearer token`, `AS   POST /token -> 200`."""

    def __init__(self, app: ASGIApp, label: str, stream: TextIO | None = None) -> None:
        self.app, self.label, self.stream = app, label, stream

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 0
        decisions: list[str] = []

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        reset = _decisions.set(decisions)
        try:
            await self.app(scope, receive, send_and_note)
        finally:
            _decisions.reset(reset)
            why = f"  {decisions[-1]}" if decisions else ""
            print(
                f"{self.label:4s} {scope['method']} {scope['path']} -> {status}{why}",
                file=self.stream or sys.stdout,
                flush=True,
            )


@contextmanager
def _show_decisions() -> Iterator[None]:
    """Our logger, while the demo runs: every decision to RequestLog, warnings to the terminal."""
    ours = logging.getLogger("mcp_auth_middleware")
    warnings = logging.StreamHandler()
    warnings.setLevel(logging.WARNING)
    handlers, level = [_Decisions(logging.DEBUG), warnings], ours.level
    for handler in handlers:
        ours.addHandler(handler)
    ours.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        for handler in handlers:
            ours.removeHandler(handler)
        ours.setLevel(level)


@contextmanager
def demo_stack(**options: Any) -> Iterator[DemoStack]:
    """Both servers running in background threads (for tests)."""
    from .testing import serve

    stack = build_demo(**options)
    host = stack.resource.split("//")[1].split(":")[0]
    as_port = int(stack.issuer.rsplit(":", 1)[1])
    mcp_port = int(stack.resource.rsplit(":", 1)[1].split("/")[0])
    with (
        _show_decisions(),
        serve(RequestLog(stack.authorization_server.app, "AS"), host=host, port=as_port),
        serve(RequestLog(stack.mcp_app, "MCP"), host=host, port=mcp_port),
    ):
        yield stack


def instructions(stack: DemoStack, token: str) -> str:
    call = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"whoami","arguments":{}}}'
    curl = (
        f"curl -s {stack.resource} -H 'Authorization: Bearer {token}' "
        "-H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' "
        f"-d {shlex.quote(call)}"
    )
    scopes = "\n".join(f"  {tool:14s} needs {' '.join(['mcp', *needs])}" for tool, needs in TOOL_SCOPES.items())
    validation = "The MCP server checks JWT access tokens (RFC 9068) against the authorization server's JWKS."
    if stack.token_format == "opaque":
        client_id, client_secret = INTROSPECTION_CLIENT
        validation = f"""Tokens are opaque: the MCP server asks the introspection endpoint (RFC 7662) about each one,
with its own client credentials. To try token_validation="introspection" in your own server:

  issuer="{stack.issuer}", token_validation="introspection",
  client_id="{client_id}", client_secret="{client_secret}"   (MCP_AUTH_CLIENT_ID, MCP_AUTH_CLIENT_SECRET)"""
    return f"""
mcp-oauth-middleware demo (development only; everything on 127.0.0.1)

  authorization server  {stack.issuer}   (metadata: {stack.issuer}/.well-known/oauth-authorization-server)
  protected MCP server  {stack.resource}
  resource metadata     {stack.resource.rsplit("/mcp", 1)[0]}/.well-known/oauth-protected-resource/mcp

{validation}

An access token for demo-user (scope "mcp", valid for an hour):

  {token}

Call a tool with it:

  {curl}

Without a token you get the 401 challenge that starts an MCP client's OAuth flow:

  curl -si {stack.resource} -X POST -H 'Content-Type: application/json' -d '{{}}' | grep -i www-authenticate

MCP Inspector: npx @modelcontextprotocol/inspector, transport "Streamable HTTP", URL
{stack.resource}, and either the header "Authorization: Bearer <token above>" or its OAuth flow
(dynamic registration, PKCE, automatic approval as demo-user).

Tools and the scopes they need:
{scopes}

Each request to either server prints one line below: method, path, status, and for the MCP
server the decision (why a request was refused). Ctrl-C stops both servers.
"""


def run_demo(host: str = "127.0.0.1", port: int = 8000, as_port: int = 9000, token_format: TokenFormat = "jwt") -> None:
    import uvicorn

    from .testing import serve

    stack = build_demo(host, port, as_port, token_format)
    token = stack.authorization_server.mint_token(
        sub="demo-user", scopes=["mcp"], audience=stack.resource, client_id="demo-cli"
    )
    with _show_decisions(), serve(RequestLog(stack.authorization_server.app, "AS"), host=host, port=as_port):
        print(instructions(stack, token), flush=True)
        uvicorn.run(RequestLog(stack.mcp_app, "MCP"), host=host, port=port, log_level="warning")
