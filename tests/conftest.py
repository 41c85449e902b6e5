"""Shared fixtures: one signing key per session, a small echo app, in-process clients."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx2
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from mcp_auth_middleware import MCPAuthMiddleware, get_auth
from mcp_auth_middleware.testing import LocalIssuer

RESOURCE = "https://mcp.example.com/mcp"
ISSUER = "https://auth.example.com"
METADATA_URL = "https://mcp.example.com/.well-known/oauth-protected-resource/mcp"


async def whoami(request: Request) -> JSONResponse:
    auth = request.state.auth
    return JSONResponse(
        {
            "sub": auth.sub,
            "client_id": auth.client_id,
            "scopes": sorted(auth.scopes),
            "user": request.user.display_name,
            "auth_scopes": sorted(request.auth.scopes),
            "get_auth": get_auth(request) is auth and get_auth() is auth,
            "body": (await request.body()).decode("latin-1"),
        }
    )


async def health(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


def echo_app() -> Starlette:
    return Starlette(
        routes=[
            Route("/mcp", whoami, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
            Route("/health", health),
            Route("/static/file", health),
        ]
    )


@pytest.fixture(scope="session")
def issuer() -> LocalIssuer:
    return LocalIssuer(ISSUER)


@pytest.fixture
def token(issuer: LocalIssuer) -> str:
    return issuer.mint_token(audience=RESOURCE, sub="alice", scopes=["mcp", "read"], client_id="app-1")


@pytest.fixture
def make_app(issuer: LocalIssuer) -> Callable[..., MCPAuthMiddleware]:
    def make(**options: Any) -> MCPAuthMiddleware:
        options.setdefault("validator", issuer.validator())
        options.setdefault("authorization_servers", [ISSUER])
        return MCPAuthMiddleware(options.pop("app", None) or echo_app(), resource=RESOURCE, **options)

    return make


@pytest.fixture
async def client(make_app: Callable[..., MCPAuthMiddleware]) -> AsyncIterator[httpx2.AsyncClient]:
    async with asgi_client(make_app()) as c:
        yield c


def asgi_client(app: Any) -> httpx2.AsyncClient:
    return httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="https://mcp.example.com")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def http_scope(*headers: tuple[bytes, bytes], method: str = "POST", path: str = "/mcp") -> dict[str, Any]:
    """A raw ASGI HTTP scope, for tests that drive the middleware message by message."""
    return {
        "type": "http",
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": list(headers),
        "scheme": "https",
        "server": ("mcp.example.com", 443),
        "root_path": "",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
    }


# -- No token ever reaches a log line (MCP authorization, Token Handling) ------------------

ISSUED_TOKENS: set[str] = set()


def remember_token(token: str) -> str:
    ISSUED_TOKENS.add(token)
    return token


class _Capture(logging.Handler):
    """Every record, with every structured field, as text."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.parts: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith(("httpx2", "httpcore2")):
            # The test clients' own request lines: the query-string tests put a token in the URL on
            # purpose. Our outbound calls carry tokens only in bodies (see test_introspection).
            return
        try:
            text = record.getMessage()
        except Exception:  # a record whose args do not format is still text to check
            text = f"{record.msg!r} {record.args!r}"
        self.parts.append(
            text + " " + " ".join(f"{k}={v}" for k, v in record.__dict__.items() if k not in ("msg", "args"))
        )
        if record.exc_info:
            self.parts.append(logging.Formatter().formatException(record.exc_info))


@pytest.fixture(scope="session", autouse=True)
def no_token_in_any_log_line() -> Iterator[None]:
    """Captures all log output of the whole suite (ours at DEBUG, everything else at INFO) and,
    at the end, asserts that no issued token, nor any 16-character piece of one, appears."""
    from mcp_auth_middleware.server.local import LocalAuthorizationServer

    capture = _Capture()
    root, ours = logging.getLogger(), logging.getLogger("mcp_auth_middleware")
    saved = (root.level, ours.level)
    root.addHandler(capture)
    root.setLevel(logging.INFO)
    ours.setLevel(logging.DEBUG)
    mint, save = LocalIssuer.mint_token, LocalAuthorizationServer.save_token

    def mint_and_remember(self: LocalIssuer, **kwargs: Any) -> str:
        return remember_token(mint(self, **kwargs))

    def save_and_remember(self: LocalAuthorizationServer, token: dict[str, Any], **record: Any) -> None:
        remember_token(token["access_token"])
        if token.get("refresh_token"):
            remember_token(token["refresh_token"])
        save(self, token, **record)

    LocalIssuer.mint_token = mint_and_remember  # type: ignore[method-assign]
    LocalAuthorizationServer.save_token = save_and_remember  # type: ignore[method-assign]
    try:
        yield
    finally:
        LocalIssuer.mint_token = mint  # type: ignore[method-assign]
        LocalAuthorizationServer.save_token = save  # type: ignore[method-assign]
        root.removeHandler(capture)
        root.setLevel(saved[0])
        ours.setLevel(saved[1])
    text = "\n".join(capture.parts)
    windows = {text[i : i + 16] for i in range(len(text) - 15)}
    # A JWT's header segment is public and shared by every token of a key, so the pieces
    # checked are those of its payload and signature; an opaque token is checked whole.
    secret_parts = [t.partition(".")[2] if t.count(".") == 2 else t for t in ISSUED_TOKENS]
    leaked = [
        p[:8] + "..."
        for p in secret_parts
        if len(p) >= 16 and any(p[i : i + 16] in windows for i in range(len(p) - 15))
    ]
    assert not leaked, f"{len(leaked)} tokens appeared in log output: {leaked[:5]}"
