"""A middleware whose options cannot work, built by a middleware stack: Starlette's
`Middleware(MCPAuthMiddleware, ...)` builds it when serving starts, inside the lifespan, where
raising reads to uvicorn as "lifespan unsupported" (and every request would be a 500)."""

from __future__ import annotations

import logging
import sys

from starlette.types import ASGIApp, Receive, Scope, Send

from .challenge import MISCONFIGURED, send_response
from .middleware import MCPAuthMiddleware

__all__ = ["Misconfigured", "misconfigured"]

logger = logging.getLogger("mcp_auth_middleware")


class Misconfigured(MCPAuthMiddleware):
    """A middleware whose options cannot work, built by a middleware stack (see __init__):
    its startup fails with the one line that says why; without lifespan, every request gets
    503 `server_misconfigured` and the line is logged once."""

    problem: str

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.failed", "message": self.problem})
            return
        if not getattr(self, "_said", False):
            self._said = True
            logger.error("%s", self.problem)
        if scope["type"] == "http":
            await send_response(send, MISCONFIGURED)
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1011})


def misconfigured(middleware: MCPAuthMiddleware, app: ASGIApp, problem: str) -> None:
    """ValueError(problem) for a middleware built by hand. One that Starlette (or FastAPI)
    builds from `Middleware(MCPAuthMiddleware, ...)` (its `build_middleware_stack` calls the
    class, two frames up from here) becomes a `Misconfigured`, whose startup fails saying why."""
    if sys._getframe(2).f_code.co_name != "build_middleware_stack":
        raise ValueError(problem) from None
    middleware.__class__ = Misconfigured
    middleware.app, middleware.problem = app, problem  # type: ignore[attr-defined]
