"""The server under load: a FastMCP app, bare (SOAK_MIDDLEWARE=0), behind the middleware (1),
or behind the least middleware that authenticates a repeated token (floor)."""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

from fastmcp import FastMCP

from mcp_auth_middleware import AuthInfo, JWTValidator, MCPAuthMiddleware, get_auth
from mcp_auth_middleware.integrations.mcp import user_context_var

mcp = FastMCP("soak")


@mcp.tool
def whoami() -> str:
    auth = get_auth()
    return auth.sub if auth is not None and auth.sub else "anonymous"


def floor(app: Any, validator: JWTValidator) -> Any:
    """Find the header, hash the token, look it up, attach the caller where FastMCP and the
    MCP SDK look for it: what any middleware must do for a token it has seen. A new token is
    verified once by our validator, so the app sees the same caller as behind ours."""
    seen: dict[bytes, AuthInfo] = {}

    async def middleware(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        token = b""
        for name, value in scope["headers"]:
            if name == b"authorization":
                token = value[7:]
        key = hashlib.sha256(token).digest()
        info = seen.get(key)
        if info is None:
            info = seen[key] = await validator.validate(token.decode())
        scope.setdefault("state", {})["auth"] = info
        scope["user"], scope["auth"] = info.user, info.credentials
        reset = user_context_var.set(info.user)
        try:
            await app(scope, receive, send)
        finally:
            user_context_var.reset(reset)

    return middleware


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
