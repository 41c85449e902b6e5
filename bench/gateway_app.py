"""The servers bench/gateway.py puts behind nginx: FastMCP trusting the gateway's identity
header (`upstream`), and the authorization service (`service`), configured from BENCH_*."""

from __future__ import annotations

import json
import os

from fastmcp import FastMCP
from fastmcp.server.dependencies import get_http_request

from mcp_auth_middleware import JWTValidator
from mcp_auth_middleware.gateway import GatewayService

mcp = FastMCP("behind nginx")


@mcp.tool
def whoami() -> str:
    return get_http_request().headers.get("x-auth-subject") or "anonymous"


def upstream() -> object:
    return mcp.http_app(stateless_http=True, json_response=True)


def service() -> object:
    return GatewayService(
        gateway="nginx",
        resource=os.environ["BENCH_RESOURCE"],
        authorization_servers=[os.environ["BENCH_ISSUER"]],
        validator=JWTValidator(issuer=os.environ["BENCH_ISSUER"], keys=json.loads(os.environ["BENCH_JWKS"])),
        required_scopes=["mcp"],
        tool_scopes={"delete_notes": ["notes:delete"]},
        failure_limit=None,
    )
