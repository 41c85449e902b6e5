"""Testing kit: mint real signed tokens for your own protected MCP server's tests.

Loaded as a pytest plugin (`mcp_auth_issuer` fixture) when this package is installed, and
usable without pytest:

    issuer = LocalIssuer()
    app = MCPAuthMiddleware(mcp.http_app(), resource=URL, authorization_servers=[issuer.issuer],
                            validator=issuer.validator())
    token = issuer.mint_token(sub="alice", scopes=["mcp"], audience=URL)
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

from .validators.jwt import JWTValidator
from .values import word_list

if TYPE_CHECKING:
    from .server.enterprise import EnterpriseIdentityProvider
    from .server.local import LocalAuthorizationServer

__all__ = [
    "LocalIssuer",
    "free_port",
    "mcp_auth_enterprise_idp",
    "mcp_auth_issuer",
    "mcp_auth_server",
    "mcp_auth_server_opaque",
    "running_authorization_server",
    "running_identity_provider",
    "serve",
]


class LocalIssuer:
    """An issuer with a fresh signing key that mints RFC 9068 JWT access tokens."""

    def __init__(
        self,
        issuer: str = "https://issuer.test",
        *,
        key: RSAKey | ECKey | None = None,
        kid: str | None = None,
        algorithm: str | None = None,
    ) -> None:
        self.issuer = issuer
        self.key = key or RSAKey.generate_key(2048, parameters={"kid": kid or secrets.token_hex(4)})
        self.key.ensure_kid()
        self.algorithm = algorithm or ("RS256" if isinstance(self.key, RSAKey) else "ES256")

    @property
    def jwks(self) -> dict[str, Any]:
        """The public JWKS, as an authorization server would publish it."""
        return {"keys": [{**self.key.as_dict(private=False), "use": "sig", "alg": self.algorithm}]}

    def mint_token(
        self,
        *,
        audience: str | list[str],
        sub: str = "test-user",
        scopes: str | Iterable[str] = (),
        client_id: str = "test-client",
        expires_in: int = 300,
        typ: str = "at+jwt",
        header: dict[str, Any] | None = None,
        **claims: Any,
    ) -> str:
        """A signed JWT access token; `claims` add to or override the standard ones."""
        now = int(time.time())
        payload: dict[str, Any] = {
            "iss": self.issuer,
            "sub": sub,
            "aud": audience,
            "client_id": client_id,
            "iat": now,
            "exp": now + expires_in,
            "jti": secrets.token_urlsafe(12),
        }
        scope = " ".join(word_list(scopes))
        if scope:
            payload["scope"] = scope
        payload.update(claims)
        payload = {k: v for k, v in payload.items() if v is not None}
        jose_header = {"alg": self.algorithm, "kid": self.key.kid, "typ": typ, **(header or {})}
        return jwt.encode(jose_header, payload, self.key, algorithms=[jose_header["alg"]])

    def validator(self, **options: Any) -> JWTValidator:
        """A JWTValidator that trusts this issuer's key."""
        return JWTValidator(issuer=self.issuer, keys=self.jwks, **options)


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago, for servers whose URL must be known before they start."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def serve(
    app: Any, *, host: str = "127.0.0.1", port: int = 0, timeout: float = 20.0, **uvicorn_options: Any
) -> Iterator[str]:
    """Run an ASGI app on a real uvicorn server in a background thread; yields its base URL.

    Lifespan runs, so FastMCP and MCP SDK apps start their session managers. Other keywords
    go to `uvicorn.Config` (`root_path="/prefix"`, as behind a reverse proxy).
    """
    try:
        import uvicorn
    except ImportError:
        raise ModuleNotFoundError(
            "serve() runs uvicorn, which is not installed: pip install 'mcp-oauth-middleware[server]'", name="uvicorn"
        ) from None

    options: dict[str, Any] = {"log_level": "warning", "lifespan": "auto", **uvicorn_options}
    config = uvicorn.Config(app, host=host, port=port, **options)
    server = uvicorn.Server(config)

    def run() -> None:
        with contextlib.suppress(SystemExit):  # uvicorn exits when startup fails: reported below
            asyncio.run(server.serve())

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"uvicorn did not start on {host}:{port}")
        time.sleep(0.01)
    bound_port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://{host}:{bound_port}"
    finally:
        server.should_exit = True
        thread.join(timeout)


@contextlib.contextmanager
def running_authorization_server(**options: Any) -> Iterator[LocalAuthorizationServer]:
    """A LocalAuthorizationServer on a free loopback port, for the duration of the block."""
    from .server.local import LocalAuthorizationServer

    port = free_port()
    server = LocalAuthorizationServer(f"http://127.0.0.1:{port}", **options)
    with serve(server.app, port=port):
        yield server


@contextlib.contextmanager
def running_identity_provider(**options: Any) -> Iterator[EnterpriseIdentityProvider]:
    """An EnterpriseIdentityProvider (ID tokens, and ID-JAGs by token exchange) on a free
    loopback port, for the duration of the block."""
    from .server.enterprise import EnterpriseIdentityProvider

    port = free_port()
    provider = EnterpriseIdentityProvider(f"http://127.0.0.1:{port}", **options)
    with serve(provider.app, port=port):
        yield provider


try:
    import pytest
except ImportError:  # pragma: no cover - only without pytest
    pass
else:

    @pytest.fixture
    def mcp_auth_issuer() -> LocalIssuer:
        """A LocalIssuer with a fresh key for one test (no server: validate with its `.validator()`)."""
        return LocalIssuer()

    @pytest.fixture(scope="session")
    def mcp_auth_server() -> Iterator[LocalAuthorizationServer]:
        """A running local authorization server issuing JWT access tokens (one per test session)."""
        with running_authorization_server(user="test-user", scopes_supported=["mcp"]) as server:
            yield server

    @pytest.fixture
    def mcp_auth_enterprise_idp() -> Iterator[EnterpriseIdentityProvider]:
        """A running enterprise identity provider issuing ID-JAGs (the enterprise flow, SEP-990):
        `trust_identity_provider(idp.issuer, idp.jwks, resources=[...])` at the authorization
        server, `register_client` and `allow` here."""
        with running_identity_provider() as provider:
            yield provider

    @pytest.fixture(scope="session")
    def mcp_auth_server_opaque() -> Iterator[LocalAuthorizationServer]:
        """The same, issuing opaque tokens: validate them with token_validation="introspection"
        after `register_resource_server(client_id, secret, [resource])`."""
        with running_authorization_server(user="test-user", scopes_supported=["mcp"], token_format="opaque") as server:
            yield server
