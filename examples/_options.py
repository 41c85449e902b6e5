"""What every example reads from its command line; MCP_AUTH_* variables set the rest.

By default an example runs against the authorization server of `mcp-oauth-middleware demo`
(http://127.0.0.1:9000) on port 8001, next to the demo's own MCP server on 8000.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from starlette.types import ASGIApp

from mcp_auth_middleware import MCPAuthMiddleware


def protect(app: ASGIApp, *, path: str, description: str | None, **options: Any) -> tuple[MCPAuthMiddleware, Any]:
    """The example's app wrapped as its flags and MCP_AUTH_* variables say, and those flags."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument(
        "--resource", default=os.environ.get("MCP_AUTH_RESOURCE"), help=f"default http://HOST:PORT{path}"
    )
    parser.add_argument("--issuer", default=os.environ.get("MCP_AUTH_ISSUER", "http://127.0.0.1:9000"))
    args = parser.parse_args()
    args.resource = args.resource or f"http://{args.host}:{args.port}{path}"
    # Every other MCP_AUTH_* variable (client id and secret, scopes, ...) applies as well.
    environ = {**os.environ, "MCP_AUTH_RESOURCE": args.resource, "MCP_AUTH_ISSUER": args.issuer}
    return MCPAuthMiddleware.from_env(app, environ, **options), args


def run(app: ASGIApp, args: Any) -> None:
    import uvicorn

    print(f"protected resource {args.resource}, authorization server {args.issuer}", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")
