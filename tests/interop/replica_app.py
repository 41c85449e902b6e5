"""One replica for the shared-rate-limit tests: configured entirely from MCP_AUTH_* variables."""

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from mcp_auth_middleware import MCPAuthMiddleware


async def hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse(request.state.auth.sub)


app = MCPAuthMiddleware.from_env(Starlette(routes=[Route("/mcp", hello, methods=["POST"])]))
