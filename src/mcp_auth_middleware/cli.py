"""The `mcp-oauth-middleware` command: demo, discover ISSUER, check TOKEN."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from collections.abc import Sequence
from typing import Any

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mcp-oauth-middleware", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="run a local authorization server and a protected MCP server")
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=int, default=8000, help="MCP server port (default 8000)")
    demo.add_argument("--as-port", type=int, default=9000, help="authorization server port (default 9000)")
    demo.add_argument("--token-format", choices=["jwt", "opaque"], default="jwt")

    discover = commands.add_parser("discover", help="fetch and check an authorization server's metadata")
    discover.add_argument("issuer")

    check = commands.add_parser("check", help="what the middleware would decide for a token, and why")
    check.add_argument("token")
    check.add_argument("--resource", required=True, help="the protected resource URI (the audience)")
    check.add_argument("--issuer", required=True)
    check.add_argument("--jwks-uri", help="skip discovery")
    check.add_argument("--scope", action="append", default=[], help="a required scope (repeatable)")

    args = parser.parse_args(argv)
    if args.command == "demo":
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


async def _discover(issuer: str) -> int:
    from .discovery import discover_authorization_server
    from .errors import AuthError

    try:
        document = await discover_authorization_server(issuer)
    except AuthError as exc:
        print(f"discovery failed: {exc.description}", file=sys.stderr)
        return 1
    print(json.dumps(document, indent=2))
    for member in ("jwks_uri", "introspection_endpoint", "registration_endpoint", "code_challenge_methods_supported"):
        if member not in document:
            print(f"note: the metadata has no {member}", file=sys.stderr)
    return 0


async def _check(args: argparse.Namespace) -> int:
    """Runs the real request path in-process, so the answer is exactly the middleware's."""
    from starlette.types import Message, Receive, Scope, Send

    from .middleware import MCPAuthMiddleware

    seen: dict[str, Any] = {}

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen["auth"] = scope["state"]["auth"]
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    middleware = MCPAuthMiddleware(
        app, resource=args.resource, issuer=args.issuer, jwks_uri=args.jwks_uri, required_scopes=args.scope
    )
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
    }
    await middleware(scope, receive, send)
    status = messages[0]["status"]
    headers = {k.decode(): v.decode("latin-1") for k, v in messages[0]["headers"]}
    if status == 200:
        info = seen["auth"]
        print(f"ALLOW  sub={info.sub} client_id={info.client_id} scopes={' '.join(sorted(info.scopes))}")
        print(json.dumps(dict(info.claims), indent=2, default=str))
        return 0
    print(f"DENY   HTTP {status}")
    if "www-authenticate" in headers:
        print(f"WWW-Authenticate: {headers['www-authenticate']}")
    body = messages[1].get("body", b"")
    if body:
        print(body.decode("utf-8", "replace"))
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
