"""`mcp-oauth-middleware demo`: a local authorization server and a protected MCP server on
loopback, with a token and what to try next."""

from __future__ import annotations

import argparse
import contextlib
from typing import Any

from ..values import LOOPBACK_HOSTS
from ._common import fail, port_free


def add_parser(commands: Any) -> None:
    demo = commands.add_parser(
        "demo",
        help="run a local authorization server and a protected MCP server",
        description=__doc__,
    )
    demo.add_argument(
        "--host",
        default="127.0.0.1",
        help="loopback address to bind (default 127.0.0.1; the demo is plain http and approves every sign-in)",
    )
    demo.add_argument("--port", type=int, default=8000, help="MCP server port (default 8000)")
    demo.add_argument("--as-port", type=int, default=9000, help="authorization server port (default 9000)")
    demo.add_argument(
        "--token-format",
        choices=["jwt", "opaque"],
        default="jwt",
        help="jwt: RFC 9068 access tokens checked against the JWKS (default); "
        "opaque: random tokens checked by RFC 7662 introspection",
    )
    demo.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.host.strip("[]").lower() not in LOOPBACK_HOSTS:
        return fail(
            "demo",
            f"--host {args.host} is not a loopback address: the demo serves plain http and signs everyone in "
            "without asking, so it binds only 127.0.0.1, ::1 or localhost",
        )
    try:  # what to install first: a free port is no use without it
        from ..demo import run_demo
    except ImportError as exc:
        return fail("demo", f"needs {exc.name or 'FastMCP'}: pip install 'mcp-oauth-middleware[demo]'")
    busy = [port for port in (args.port, args.as_port) if not port_free(args.host, port)]
    if busy:
        return fail("demo", f"port {busy[0]} on {args.host} is in use; choose others with --port and --as-port", 1)
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how the demo ends
        run_demo(args.host.strip("[]"), args.port, args.as_port, args.token_format)
    return 0
