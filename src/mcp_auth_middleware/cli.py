"""The `mcp-oauth-middleware` command: demo, discover ISSUER, check [TOKEN]."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import socket
import sys
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

__all__ = ["main", "readiness_problems"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mcp-oauth-middleware", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="run a local authorization server and a protected MCP server")
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=int, default=8000, help="MCP server port (default 8000)")
    demo.add_argument("--as-port", type=int, default=9000, help="authorization server port (default 9000)")
    demo.add_argument("--token-format", choices=["jwt", "opaque"], default="jwt")

    discover = commands.add_parser(
        "discover", help="fetch an authorization server's metadata and check that MCP clients can use it"
    )
    discover.add_argument("issuer")

    check = commands.add_parser(
        "check",
        help="check the configuration against the authorization server; with TOKEN, what the middleware decides",
    )
    check.add_argument("token", nargs="?", help="an access token (omit to check the configuration only)")
    check.add_argument("--resource", required=True, help="the protected resource URI (the audience)")
    check.add_argument("--issuer", required=True)
    check.add_argument("--jwks-uri", help="skip discovery of the key set")
    check.add_argument("--scope", action="append", default=[], help="a required scope (repeatable)")
    check.add_argument("--token-validation", choices=["jwt", "introspection", "both"], default="jwt")
    check.add_argument("--client-id", help="introspection: this resource server's client id")
    check.add_argument(
        "--client-secret", help="introspection: its secret (default: the MCP_AUTH_CLIENT_SECRET variable)"
    )

    args = parser.parse_args(argv)
    if args.command == "demo":
        busy = [port for port in (args.port, args.as_port) if not _port_free(args.host, port)]
        if busy:
            print(
                f"mcp-oauth-middleware demo: port {busy[0]} on {args.host} is in use; "
                "choose others with --port and --as-port",
                file=sys.stderr,
            )
            return 1
        from .demo import run_demo

        with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how the demo ends
            run_demo(args.host, args.port, args.as_port, args.token_format)
        return 0
    if args.command == "discover":
        return asyncio.run(_discover(args.issuer))
    return asyncio.run(_check(args))


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mcp-oauth-middleware")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "unknown"


def _port_free(host: str, port: int) -> bool:
    """Whether uvicorn can listen on the port: with SO_REUSEADDR, as uvicorn binds, so that the
    connections a demo stopped a moment ago left in TIME_WAIT do not count as "in use"."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def readiness_problems(document: Mapping[str, Any]) -> list[str]:
    """What keeps MCP clients (or this middleware) from using an authorization server, read
    from its metadata (RFC 8414 §2; MCP authorization: Authorization Server Discovery, Client
    Registration Approaches, Authorization Code Protection)."""
    problems = [
        f"no {member} (RFC 8414 §2)"
        for member in ("authorization_endpoint", "token_endpoint")
        if not isinstance(document.get(member), str)
    ]
    methods = document.get("code_challenge_methods_supported")
    if not (isinstance(methods, list) and "S256" in methods):
        problems.append("code_challenge_methods_supported lacks S256: MCP clients refuse a server without PKCE S256")
    if not document.get("registration_endpoint") and document.get("client_id_metadata_document_supported") is not True:
        problems.append(
            "neither registration_endpoint (RFC 7591) nor client_id_metadata_document_supported: "
            "MCP clients cannot register themselves, only pre-registered client ids work"
        )
    if not document.get("jwks_uri") and not document.get("introspection_endpoint"):
        problems.append("neither jwks_uri nor introspection_endpoint: the resource server cannot validate tokens")
    return problems


async def _discover(issuer: str) -> int:
    from .discovery import discover_authorization_server
    from .errors import AuthError

    try:
        document = await discover_authorization_server(issuer)
    except AuthError as exc:
        print(f"discovery failed: {exc.detail or exc.description}", file=sys.stderr)
        return 1
    print(json.dumps(document, indent=2))
    problems = readiness_problems(document)
    for problem in problems:
        print(f"missing: {problem}", file=sys.stderr)
    print(
        "note: support for resource indicators (RFC 8707), which MCP clients send, is not visible in metadata; "
        "`check` with a real token shows whether tokens carry the resource as audience",
        file=sys.stderr,
    )
    return 1 if problems else 0


@contextlib.contextmanager
def _reasons() -> Iterator[list[str]]:
    """The reasons the middleware logs while the block runs (one line per decision), kept
    for the command's own output instead of reaching the terminal as log lines."""
    reasons: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            reason = getattr(record, "auth_reason", None)
            if isinstance(reason, str):
                reasons.append(reason)

    handler = Collect(logging.DEBUG)
    ours = logging.getLogger("mcp_auth_middleware")
    saved = ours.level, ours.propagate
    ours.addHandler(handler)
    ours.setLevel(logging.DEBUG)
    ours.propagate = False
    try:
        yield reasons
    finally:
        ours.removeHandler(handler)
        ours.setLevel(saved[0])
        ours.propagate = saved[1]


async def _check(args: argparse.Namespace) -> int:
    """Runs the real startup check and request path in-process, so the answer is the middleware's."""
    from starlette.types import Message, Receive, Scope, Send

    from .errors import ConfigurationError
    from .middleware import MCPAuthMiddleware

    seen: dict[str, Any] = {}

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen["auth"] = scope["state"]["auth"]
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    options: dict[str, Any] = {"token_validation": args.token_validation}
    if args.token_validation != "jwt":
        options |= {
            "client_id": args.client_id,
            "client_secret": args.client_secret or os.environ.get("MCP_AUTH_CLIENT_SECRET"),
        }
    try:
        middleware = MCPAuthMiddleware(
            app,
            resource=args.resource,
            issuer=args.issuer,
            jwks_uri=args.jwks_uri,
            required_scopes=args.scope,
            **options,
        )
    except ValueError as exc:
        print(f"INVALID CONFIGURATION  {exc}", file=sys.stderr)
        return 2
    with _reasons():  # the lines below say it once
        problem = await middleware.check()
    if isinstance(problem, ConfigurationError):
        print(f"MISCONFIGURED  {problem.detail}")
        return 2
    if problem is not None:
        print(f"UNREACHABLE  {problem.detail or problem.description}")
        return 3
    if args.token is None:
        print(f"OK  {args.resource} can validate tokens from {args.issuer} ({args.token_validation})")
        return 0

    messages: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        messages.append(message)

    path = "/" + args.resource.split("//", 1)[-1].partition("/")[2]
    scope = {
        "type": "http",
        "method": "POST",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(b"authorization", f"Bearer {args.token}".encode())],
        "scheme": "https",
        "asgi": {"version": "3.0"},
        "root_path": "",
        "server": ("localhost", 443),
        "client": ("127.0.0.1", 0),
    }
    with _reasons() as reasons:
        await middleware(scope, receive, send)
    status = messages[0]["status"]
    headers = {k.decode(): v.decode("latin-1") for k, v in messages[0]["headers"]}
    if status == 200:
        info = seen["auth"]
        print(f"ALLOW  sub={info.sub} client_id={info.client_id} scopes={' '.join(sorted(info.scopes))}")
        print(json.dumps(dict(info.claims), indent=2, default=str))
        return 0
    print(f"DENY   HTTP {status}")
    for reason in reasons:
        print(f"why:   {reason}")
    if "www-authenticate" in headers:
        print(f"WWW-Authenticate: {headers['www-authenticate']}")
    body = messages[1].get("body", b"")
    if body:
        print(body.decode("utf-8", "replace"))
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
