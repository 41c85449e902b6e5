"""The server under load: a FastMCP app, bare (SOAK_MIDDLEWARE=0), behind the middleware (1),
or behind the least middleware that authenticates a repeated token (floor)."""

from __future__ import annotations

import json
import os
from typing import Any

from common import hash_lookup_floor
from fastmcp import FastMCP

from mcp_auth_middleware import JWTValidator, MCPAuthMiddleware, get_auth
from mcp_auth_middleware.integrations.mcp import starlette_user

mcp = FastMCP("soak")


@mcp.tool
def whoami() -> str:
    auth = get_auth()
    return auth.sub if auth is not None and auth.sub else "anonymous"


def floor(app: Any, validator: JWTValidator) -> Any:
    """bench/common.py's hash+lookup floor, attaching the caller as the MCP SDK's user, where
    FastMCP and `get_auth()` look for it. A new token is verified once by our validator, so the
    app sees the same caller as behind ours."""

    async def user(token: bytes) -> Any:
        return (await validator.validate(token.decode())).derived(starlette_user)

    return hash_lookup_floor(app, on_miss=user)


def create_app() -> object:
    inner = mcp.http_app(stateless_http=True, json_response=True)
    mode = os.environ.get("SOAK_MIDDLEWARE", "1")
    if mode == "0":
        return inner
    validator = JWTValidator(issuer=os.environ["SOAK_ISSUER"], keys=json.loads(os.environ["SOAK_JWKS"]))
    if mode == "floor":
        return floor(inner, validator.for_resource(os.environ["SOAK_RESOURCE"]))
    return MCPAuthMiddleware(
        inner,
        resource=os.environ["SOAK_RESOURCE"],
        authorization_servers=[os.environ["SOAK_ISSUER"]],
        validator=validator,
        required_scopes=["mcp"],
        failure_limit=None,
    )
