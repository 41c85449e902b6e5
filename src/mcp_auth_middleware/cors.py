"""What browser clients (MCP Inspector, web agents) need from the middleware: CORS answers for
the origins it allows, and a readable refusal for those it does not.

CORS is not part of MCP authorization, but a page can read a 401 challenge, the metadata and
a 403 step-up only through it: preflights are answered before authentication, and every
answer exposes `WWW-Authenticate` and the MCP headers. Starlette's `CORSMiddleware` does the
work, used as the ASGI app it is (wrapping the rest of the request path).
"""

from __future__ import annotations

from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp

from .challenge import RawResponse

__all__ = ["EXPOSED_HEADERS", "FORBIDDEN_ORIGIN", "FORBIDDEN_ORIGIN_PREFLIGHT", "with_cors"]

#: Headers a browser client must be able to read.
EXPOSED_HEADERS = ("WWW-Authenticate", "Mcp-Session-Id", "Mcp-Protocol-Version", "Retry-After", "DPoP-Nonce")


def with_cors(app: ASGIApp, origins: tuple[str, ...]) -> CORSMiddleware:
    """`app` behind CORS for `origins` (`*`: any), without credentials: preflights answered
    (methods GET, POST, DELETE, OPTIONS; any request header; cached a day)."""
    return CORSMiddleware(
        app,
        allow_origins=list(origins),
        allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
        allow_headers=["*"],
        expose_headers=list(EXPOSED_HEADERS),
        max_age=86400,
    )


# A refused Origin's answer is readable by the page that caused it (CORS `*`, no credentials):
# it holds nothing secret, and a browser's console then shows why instead of a network error.
FORBIDDEN_ORIGIN: RawResponse = (
    403,
    [
        (b"content-type", b"application/json"),
        (b"x-content-type-options", b"nosniff"),
        (b"access-control-allow-origin", b"*"),
        (b"cache-control", b"no-store"),
    ],
    b'{"error": "forbidden_origin", "error_description": "This Origin is not allowed: the server\'s log '
    b'names the option that admits it (allowed_origins)"}',
)
#: The preflight of a refused Origin passes, so that the request itself gets the readable 403.
FORBIDDEN_ORIGIN_PREFLIGHT: RawResponse = (
    204,
    [
        (b"access-control-allow-origin", b"*"),
        (b"access-control-allow-methods", b"GET, POST, DELETE, OPTIONS"),
        (b"access-control-allow-headers", b"*"),
    ],
    b"",
)
