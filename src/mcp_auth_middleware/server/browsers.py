"""What browser-based clients (MCP Inspector) need from the authorization server: CORS on the
endpoints they call, and no content sniffing."""

from __future__ import annotations

from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["CORS_PATHS", "ForBrowsers"]


#: Endpoints a browser-based client calls from its own origin.
CORS_PATHS = frozenset(
    {
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
        "/jwks",
        "/register",
        "/token",
        "/revoke",
    }
)


class ForBrowsers:
    """CORS on the endpoints browser clients call (preflights included), and
    `X-Content-Type-Options: nosniff` on every answer."""

    def __init__(self, app: ASGIApp, paths: frozenset[str] = CORS_PATHS) -> None:
        self.app, self.paths = app, paths
        self.cors = CORSMiddleware(
            app, allow_origins=["*"], allow_methods=["GET", "POST", "OPTIONS"], allow_headers=["*"]
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_nosniff(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = message.get("headers", [])
                if all(name.lower() != b"x-content-type-options" for name, _ in headers):  # once, not twice
                    message = {**message, "headers": [*headers, (b"x-content-type-options", b"nosniff")]}
            await send(message)

        await (self.cors if scope["path"] in self.paths else self.app)(scope, receive, send_nosniff)
