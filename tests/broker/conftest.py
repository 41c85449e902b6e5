"""What the broker's tests share: its records on each storage it offers (SQLite: a file, a second
connection to it what a second process on the machine would have; real Redis: two clients, two
replicas), the Entra-like provider (node oidc-provider), a user's browser at the broker
(`BrokerBrowser`), and the broker behind the middleware in process (`setup`, `build`)."""

from __future__ import annotations

import base64
import hashlib
import html
import json
import os
import re
import secrets
import shutil
import sqlite3
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit

import httpx2
import pytest
from joserfc.jwk import RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from mcp_auth_middleware import MCPAuthMiddleware
from mcp_auth_middleware.broker.authorization_server import Broker
from mcp_auth_middleware.broker.clients import BrokerClient
from mcp_auth_middleware.broker.providers import oidc
from mcp_auth_middleware.broker.storage import Records, SharedRecords, SQLiteRecords
from mcp_auth_middleware.testing import free_port

from ..interop.conftest import OIDC_DIR, Redis, redis_server  # noqa: F401 (a fixture)
from ..processes import stop_process, wait_for_port


@pytest.fixture(params=["sqlite", "redis"])
async def two_replicas(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    redis_server: Redis,  # noqa: F811
) -> AsyncIterator[tuple[Records, Records]]:
    if request.param == "sqlite":
        pair: tuple[Records, Records] = (SQLiteRecords(tmp_path / "broker.db"), SQLiteRecords(tmp_path / "broker.db"))
    else:
        pair = (SharedRecords(redis_server.url), SharedRecords(redis_server.url))
    yield pair
    for records in pair:
        await records.aclose()


@dataclass
class EntraLike:
    """node oidc-provider as an Entra-like provider (tests/interop/oidc_provider/entra_like.mjs)."""

    port: int
    redirect_uri: str
    client_id: str = "broker"
    client_secret: str = "broker-secret"
    tenant: str = "5b4f6e2a-0c1d-4e8f-9a7b-3c2d1e0f9a8b"

    @property
    def origin(self) -> str:
        """Where Entra's `https://login.microsoftonline.com` would be."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def issuer(self) -> str:
        return f"{self.origin}/{self.tenant}/v2.0"


@pytest.fixture(scope="session")
def entra_like() -> Iterator[EntraLike]:
    node = shutil.which("node")
    if node is None or not (OIDC_DIR / "node_modules" / "oidc-provider").is_dir():
        pytest.fail("node and oidc-provider are needed: `make test` installs them (tests/interop/oidc_provider)")
    provider = EntraLike(free_port(), f"http://127.0.0.1:{free_port()}/oauth/callback")
    key = RSAKey.generate_key(2048, parameters={"kid": "entra-1", "use": "sig", "alg": "RS256"})
    env = {
        **os.environ,
        "PORT": str(provider.port),
        "REDIRECT_URI": provider.redirect_uri,
        "JWKS": json.dumps({"keys": [key.as_dict(private=True)]}),
        "NODE_ENV": "test",
        "TENANT": provider.tenant,
    }
    process = subprocess.Popen(
        [node, "entra_like.mjs"], cwd=OIDC_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    wait_for_port(provider.port, process, "oidc-provider (Entra-like)")
    try:
        yield provider
    finally:
        stop_process(process)


async def through_the_provider(url: str, redirect_uri: str, *, deny: bool = False) -> dict[str, str]:
    """A browser at the provider: its login page (any login), its consent page (Continue, or the
    cancel link), until it sends the browser back to `redirect_uri`; the callback's parameters."""
    async with httpx2.AsyncClient(timeout=10, follow_redirects=False) as browser:
        response = await browser.get(url)
        for _ in range(10):
            location = response.headers.get("location")
            if location:
                target = urljoin(str(response.url), location)
                if target.startswith(redirect_uri):
                    return dict(parse_qsl(urlsplit(target).query))
                response = await browser.get(target)
                continue
            assert response.status_code == 200, response.text[:500]
            page = str(response.url)
            if deny:
                response = await browser.get(f"{page}/abort")
            elif 'name="login"' in response.text:
                response = await browser.post(page, data={"prompt": "login", "login": "alice", "password": "any"})
            else:
                response = await browser.post(page, data={"prompt": "consent"})
    raise AssertionError("the provider never sent the browser back")


# -- the broker, with the Entra-like provider behind it -----------------------------------------

SECRET = "s" * 43
CLIENT_REDIRECT = "http://127.0.0.1/callback"  # loopback: any port (RFC 8252 §7.3)


def broker_issuer(provider: EntraLike) -> str:
    """The broker lives where the provider sends its callback: `<origin>/oauth/callback`."""
    return provider.redirect_uri.removesuffix("/callback")


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


class BrokerBrowser:
    """A user's browser at the broker: its own cookie (`__Host-`: sent over loopback http as
    Chromium does; httpx's jar would not), the consent page read and posted as a browser would,
    the provider's login through `through_the_provider`."""

    def __init__(
        self,
        http: httpx2.AsyncClient,
        issuer: str,
        provider: str,
        at_provider: Callable[[str], Awaitable[dict[str, str]]] | None = None,
    ) -> None:
        self.http, self.issuer, self.provider = http, issuer, provider
        #: The user at the provider (the URL the broker sent them to -> its callback's parameters):
        #: oidc-provider's login and consent pages unless given (Glewlwyd's login API).
        self.at_provider = at_provider
        self.origin = f"{urlsplit(issuer).scheme}://{urlsplit(issuer).netloc}"
        self.cookie: str | None = None
        self.pages: list[str] = []  # every consent page shown

    def headers(self, **more: str) -> dict[str, str]:
        return ({"cookie": self.cookie} if self.cookie else {}) | more

    async def get(self, url: str) -> httpx2.Response:
        response = await self.http.get(url, headers=self.headers())
        for value in response.headers.get_list("set-cookie"):
            self.cookie = value.split(";")[0]
        return response

    async def consent(self, page: httpx2.Response, decision: str = "approve", **changes: str) -> httpx2.Response:
        """Post the consent form the page holds (`changes`: what a forger would alter)."""
        self.pages.append(page.text)
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        action = re.search(r'action="([^"]+)"', page.text)
        assert csrf and action, page.text[:500]
        form = {"csrf": html.unescape(csrf.group(1)), "decision": decision}
        headers = self.headers(origin=self.origin)
        for name, value in changes.items():
            if name in ("csrf", "decision"):
                form[name] = value
            else:
                headers[name.replace("_", "-")] = value
        url = urljoin(self.issuer + "/", html.unescape(action.group(1)))
        return await self.http.post(url, data=form, headers={k: v for k, v in headers.items() if v})

    async def sign_in(self, authorize_url: str, *, deny_at_provider: bool = False) -> dict[str, str]:
        """The whole way through: consent if asked, the provider, its callback; the parameters
        the broker sends the client's redirect URI."""
        response = await self.get(authorize_url)
        if response.status_code == 200:
            response = await self.consent(response)
        assert response.status_code == 303, response.text[:500]
        location = response.headers["location"]
        if urlsplit(location).netloc == urlsplit(self.provider).netloc:  # to the provider
            if self.at_provider is not None:
                callback = await self.at_provider(location)
            else:
                callback = await through_the_provider(location, f"{self.issuer}/callback", deny=deny_at_provider)
            response = await self.get(f"{self.issuer}/callback?{urlencode(callback)}")
            assert response.status_code == 303, response.text[:500]
            location = response.headers["location"]
        return dict(parse_qsl(urlsplit(location).query))


def authorize_url(issuer: str, client_id: str, challenge: str, **params: str) -> str:
    query = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": "http://127.0.0.1:5555/callback",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "state": "client-state",
        "scope": "mcp",
    } | params
    return f"{issuer}/authorize?{urlencode({k: v for k, v in query.items() if v is not None})}"


# -- the broker behind the middleware, in process, the Entra-like provider behind it ------------------

CLIENT = "notes-cli"


REDIRECT = "http://127.0.0.1:5555/callback"


@dataclass
class Setup:
    broker: Broker
    http: httpx2.AsyncClient  # the broker and the MCP servers it serves, in process
    issuer: str
    resource: str  # resource A
    other: str  # resource B
    database: Path
    provider: EntraLike

    def browser(self) -> BrokerBrowser:
        return BrokerBrowser(self.http, self.issuer, self.provider.issuer)

    async def token(self, **form: str) -> httpx2.Response:
        return await self.http.post(f"{self.issuer}/token", data=form)

    async def code(self, browser: BrokerBrowser | None = None, **params: str) -> tuple[str, str]:
        verifier, challenge = pkce()
        answer = await (browser or self.browser()).sign_in(authorize_url(self.issuer, CLIENT, challenge, **params))
        assert "code" in answer, answer
        return answer["code"], verifier

    async def tokens(self, **params: str) -> dict[str, Any]:
        code, verifier = await self.code(**params)
        response = await self.token(
            grant_type="authorization_code", code=code, code_verifier=verifier, client_id=CLIENT, redirect_uri=REDIRECT
        )
        assert response.status_code == 200, response.text
        answer: dict[str, Any] = response.json()
        return answer

    def stored(self, prefix: str) -> int:
        with sqlite3.connect(self.database) as db:
            (count,) = db.execute("SELECT count(*) FROM records WHERE key LIKE ?", (f"{prefix}%",)).fetchone()
        return int(count)


def whoami(request: Request) -> JSONResponse:
    auth = request.state.auth
    return JSONResponse({"sub": auth.sub, "client_id": auth.client_id, "scopes": sorted(auth.scopes)})


def build(provider: EntraLike, database: Path, **options: Any) -> tuple[Broker, Any, str, str]:
    issuer = broker_issuer(provider)
    origin = issuer.removesuffix("/oauth")
    resource, other = f"{origin}/mcp", f"{origin}/other"
    upstream = options.pop("upstream", None) or oidc(
        provider.issuer, provider.client_id, provider.client_secret, allow_http=True
    )
    broker = Broker.of(
        issuer,
        upstream,
        [resource, other],
        [SECRET],
        storage=str(database),
        scopes_supported=options.pop("scopes_supported", ["mcp", "notes:delete"]),
        clients=(
            BrokerClient.preregistered(CLIENT, ["http://127.0.0.1/callback"], client_name="Notes CLI"),
            *options.pop("clients", ()),
        ),
        **options,
    )
    inner = Starlette(routes=[Route("/mcp", whoami, methods=["GET", "POST"]), Route("/other", whoami)])
    a = MCPAuthMiddleware(inner, resource=resource, broker=broker, required_scopes=["mcp"])
    b = MCPAuthMiddleware(inner, resource=other, broker=broker, required_scopes=["mcp"])

    async def app(scope: Any, receive: Any, send: Any) -> None:  # A at /mcp (and the broker), B at /other
        await (b if scope.get("path") == "/other" else a)(scope, receive, send)

    return broker, app, resource, other


@pytest.fixture
async def setup(entra_like: EntraLike, tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Setup]:
    options = getattr(request, "param", {})
    database = tmp_path / "broker.db"
    broker, app, resource, other = build(entra_like, database, **options)
    origin = resource.removesuffix("/mcp")
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url=origin, timeout=20) as http:
        yield Setup(broker, http, broker.issuer, resource, other, database, entra_like)
    await broker.aclose()


def client_answer(response: httpx2.Response) -> dict[str, str]:
    assert response.status_code == 303, response.text[:300]
    location = response.headers["location"]
    assert location.startswith(REDIRECT), location
    return dict(parse_qsl(urlsplit(location).query))


async def auth_of(setup: Setup, token: str) -> Any:
    """What the middleware of resource A makes of `token` (its AuthInfo)."""
    return await setup.broker.validator().for_resource(setup.resource).validate(token)


async def at_the_provider(setup: Setup, browser: BrokerBrowser, **params: str) -> str:
    """A sign-in begun and approved in `browser`: where the broker sends it at the provider."""
    _, challenge = pkce()
    page = await browser.get(authorize_url(setup.issuer, CLIENT, challenge, **params))
    response = await browser.consent(page)
    assert response.status_code == 303
    return str(response.headers["location"])
