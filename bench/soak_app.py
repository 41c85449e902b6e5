"""The server under load: a FastMCP app, with or without the middleware (SOAK_MIDDLEWARE=0/1)."""

from __future__ import annotations

import json
import os

from fastmcp import FastMCP

from mcp_auth_middleware import JWTValidator, MCPAuthMiddleware, get_auth

mcp = FastMCP("soak")


@mcp.tool
def whoami() -> str:
    auth = get_auth()
    return auth.sub if auth is not None and auth.sub else "anonymous"


def create_app() -> object:
    inner = mcp.http_app(stateless_http=True, json_response=True)
    if os.environ.get("SOAK_MIDDLEWARE", "1") == "0":
        return inner
    return MCPAuthMiddleware(
        inner,
        resource=os.environ["SOAK_RESOURCE"],
        authorization_servers=[os.environ["SOAK_ISSUER"]],
        validator=JWTValidator(issuer=os.environ["SOAK_ISSUER"], keys=json.loads(os.environ["SOAK_JWKS"])),
        required_scopes=["mcp"],
        failure_limit=None,
    )
