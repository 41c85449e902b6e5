"""End to end through the broker on real uvicorn, the Entra-like provider (node oidc-provider)
behind it: the MCP SDK's Python client and the TypeScript SDK's client sign in (registering, and
as a Client ID Metadata Document), call a tool, are stepped up for a second scope, refresh; a
tool calls the provider's own API with the user's provider token; two broker replicas on one
real Redis share every record across a restart."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import ExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx2
import pytest
from mcp import Client
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientMetadata
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from mcp_auth_middleware.broker.authorization_server import Broker
from mcp_auth_middleware.broker.providers import Provider, oidc
from mcp_auth_middleware.server.client_metadata import ClientMetadataDocuments
from mcp_auth_middleware.testing import free_port, serve

from ..broker.conftest import SECRET, BrokerBrowser, EntraLike, authorize_url, broker_issuer, entra_like, pkce  # noqa: F401
from ..broker.mcp_server import protected_server
from ..interop.conftest import Redis, glewlwyd, redis_server  # noqa: F401
from ..interop.glewlwyd import Glewlwyd
from ..processes import in_chromium, stop_process, wait_for_port
from .test_oauth_flow import MemoryStorage

pytestmark = [pytest.mark.end_to_end, pytest.mark.interop]

TS_CLIENT = Path(__file__).parent / "ts_client"


def new_broker(
    provider: EntraLike, storage: str, *, issuer: str | None = None, upstream: Provider | None = None, **options: Any
) -> Broker:
    """A broker in front of the Entra-like provider (at the URL its callback names), or `upstream`."""
    issuer = issuer or broker_issuer(provider)
    upstream = upstream or oidc(provider.issuer, provider.client_id, provider.client_secret, allow_http=True)
    return Broker.of(
        issuer,
        upstream,
        [f"{issuer.removesuffix('/oauth')}/mcp"],
        [SECRET],
        storage=storage,
        scopes_supported=["mcp", "notes:delete"],
        **options,
    )


@dataclass
class Served:
    broker: Broker
    resource: str
    issuer: str
    provider: EntraLike
    at_provider: Callable[[str], Awaitable[dict[str, str]]] | None = None  # see BrokerBrowser


@asynccontextmanager
async def served(
    provider: EntraLike,
    storage: str,
    port: int | None = None,
    at_provider: Callable[[str], Awaitable[dict[str, str]]] | None = None,
    **options: Any,
) -> AsyncIterator[Served]:
    broker = new_broker(provider, storage, **options)
    origin = broker.issuer.removesuffix("/oauth")
    resource = f"{origin}/mcp"
    listen = port or urlsplit(origin).port
    with serve(protected_server(broker, resource), port=listen):  # its shutdown closes the broker
        yield Served(broker, resource, broker.issuer, provider, at_provider)


class SDKBrowser:
    """The user's browser for the SDK client: consent and the provider's login, then the code."""

    def __init__(self, served: Served) -> None:
        self.served = served
        self.authorize_urls: list[str] = []
        self.callback: dict[str, str] = {}
        self.http = httpx2.AsyncClient(timeout=20)
        provider = str(served.broker.settings.provider.issuer)
        self.browser = BrokerBrowser(self.http, served.issuer, provider, served.at_provider)

    async def redirect_handler(self, url: str) -> None:
        self.authorize_urls.append(url)
        self.callback = await self.browser.sign_in(url)

    async def callback_handler(self) -> AuthorizationCodeResult:
        return AuthorizationCodeResult(code=self.callback["code"], state=self.callback.get("state"),
                                       iss=self.callback.get("iss"))  # fmt: skip


async def call(served: Served, auth: Any, *tools: str) -> list[Any]:
    async with (
        httpx2.AsyncClient(auth=auth, timeout=30) as http,
        Client(streamable_http_client(served.resource, http_client=http)) as client,
    ):
        results = [await client.call_tool(tool, {}) for tool in tools]
    for result in results:
        assert not result.is_error, result.content
    return [result.structured_content for result in results]


@pytest.fixture
def metadata_documents(client_metadata_host: tuple[str, Any]) -> ClientMetadataDocuments:
    _, trust = client_metadata_host
    # development: the document is on loopback, which is refused otherwise (SSRF)
    return ClientMetadataDocuments(http_client=httpx2.AsyncClient(verify=trust), development=True)


@pytest.mark.parametrize("provider", ["entra-like", "glewlwyd"])
@pytest.mark.parametrize("client_kind", ["registration", "metadata document"])
async def test_the_python_sdk_client_signs_in_steps_up_refreshes_and_a_tool_reaches_the_provider(
    entra_like: EntraLike,  # noqa: F811
    glewlwyd: Glewlwyd,  # noqa: F811
    tmp_path: Path,
    client_kind: str,
    provider: str,
    client_metadata_host: tuple[str, Any],
    metadata_documents: ClientMetadataDocuments,
) -> None:
    """Through the broker in front of each real provider: node oidc-provider (Entra-shaped) and
    Glewlwyd (its login API standing in for its login page)."""
    document_url = client_metadata_host[0] if client_kind == "metadata document" else None
    options: dict[str, Any] = {}
    if provider == "glewlwyd":
        port = free_port()
        issuer, user, broker_id = f"http://127.0.0.1:{port}/oauth", f"carol-{port}", f"mcp-broker-{port}"
        glewlwyd.add_user(user, "carol-password-1")
        glewlwyd.add_sign_in_client(broker_id, "mcp-broker-secret", f"{issuer}/callback")
        upstream = oidc(glewlwyd.issuer, broker_id, "mcp-broker-secret", scopes=("openid",), allow_http=True)

        async def at_glewlwyd(url: str) -> dict[str, str]:
            return await glewlwyd.sign_in(url, user, "carol-password-1", broker_id)

        options = {"issuer": issuer, "upstream": upstream, "port": port, "at_provider": at_glewlwyd}
    async with served(entra_like, str(tmp_path / "broker.db"), access_token_lifetime=2,
                      client_metadata_documents=metadata_documents, **options) as stack:  # fmt: skip
        browser, storage = SDKBrowser(stack), MemoryStorage()
        metadata = OAuthClientMetadata(
            redirect_uris=["http://127.0.0.1:33418/callback"], client_name="e2e", scope="mcp"
        )
        handlers = browser.redirect_handler, browser.callback_handler
        auth = OAuthClientProvider(stack.resource, metadata, storage, *handlers, client_metadata_url=document_url)
        (me,) = await call(stack, auth, "whoami")
        assert me["sub"] and me["scopes"] == ["mcp"]
        assert me["sub"] == "alice" or provider == "glewlwyd"
        assert me["client_id"] == (document_url or (storage.client and storage.client.client_id))
        first = parse_qs(urlsplit(browser.authorize_urls[0]).query)
        assert first["resource"] == [stack.resource] and first["code_challenge_method"] == ["S256"]
        # Step-up: delete_notes needs notes:delete; the SDK client authorizes again by itself.
        deleted, after = await call(stack, auth, "delete_notes", "whoami")
        assert deleted == {"result": "deleted"} and "notes:delete" in after["scopes"]
        assert len(browser.authorize_urls) == 2 and len(browser.browser.pages) == 2  # consent for the new scope
        # Refresh: the access token lives 2 s; the next call refreshes, no new sign-in.
        assert storage.tokens is not None
        old_refresh = storage.tokens.refresh_token
        await asyncio.sleep(2.5)
        (again,) = await call(stack, auth, "whoami")
        assert again["sub"] == me["sub"] and storage.tokens.refresh_token != old_refresh
        assert len(browser.authorize_urls) == 2
        # A tool calls the provider's own API as the user, with the provider's token.
        (profile,) = await call(stack, auth, "provider_profile")
        assert profile["sub"] == me["sub"]
        await browser.http.aclose()


@pytest.mark.parametrize("client_kind", ["registration", "metadata document"])
def test_the_typescript_sdk_client_signs_in_refreshes_and_steps_up(
    entra_like: EntraLike,  # noqa: F811
    tmp_path: Path,
    client_kind: str,
    client_metadata_host: tuple[str, Any],
    metadata_documents: ClientMetadataDocuments,
) -> None:
    node = shutil.which("node")
    assert node is not None and (TS_CLIENT / "node_modules" / "@modelcontextprotocol" / "sdk").is_dir(), (
        "node and the TypeScript SDK are needed: `make test` runs npm ci in tests/end_to_end/ts_client"
    )
    document_url = client_metadata_host[0] if client_kind == "metadata document" else ""
    pages: list[str] = []

    async def run() -> subprocess.CompletedProcess[str]:
        async with served(
            entra_like, str(tmp_path / "broker.db"), client_metadata_documents=metadata_documents
        ) as stack:
            browser = BrokerBrowser(None, stack.issuer, entra_like.issuer)  # type: ignore[arg-type]

            async def play(request: Request) -> JSONResponse:  # on the helper's loop: its own connections
                async with httpx2.AsyncClient(timeout=20) as browser.http:
                    return JSONResponse(await browser.sign_in(request.query_params["url"]))

            helper = free_port()
            with serve(Starlette(routes=[Route("/", play)]), port=helper):
                env = {
                    "BROWSER": f"http://127.0.0.1:{helper}/",
                    "CLIENT_METADATA_URL": document_url,
                    "PATH": "/usr/bin:/bin",
                }
                process = await asyncio.create_subprocess_exec(
                    node, "flow.mjs", stack.resource, cwd=TS_CLIENT, env=env,
                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                )  # fmt: skip
                out, err = await asyncio.wait_for(process.communicate(), 120)
            pages.extend(browser.pages)
        return subprocess.CompletedProcess([], process.returncode or 0, out.decode(), err.decode())

    completed = asyncio.run(run())
    assert completed.returncode == 0, completed.stderr[-3000:]
    steps: dict[str, list[dict[str, Any]]] = {}
    for line in completed.stdout.splitlines():
        record = json.loads(line)
        steps.setdefault(record.pop("step"), []).append(record)
    authorized = steps["authorized"][0]
    assert authorized["authorization"]["resource"].endswith("/mcp")
    assert authorized["authorization"]["code_challenge_method"] == "S256"
    with sqlite3.connect(tmp_path / "broker.db") as db:
        (registered,) = db.execute("SELECT count(*) FROM records WHERE key LIKE 'broker:client:%'").fetchone()
    if document_url:  # the document's URL is the client id: nothing registered
        assert authorized["authorization"]["client_id"] == document_url and registered == 0
    else:
        assert "client_secret" not in authorized["registration"] and registered == 1
    assert [step["result"]["sub"] for step in steps["whoami"]] == ["alice", "alice"]
    assert steps["refresh"] == [{"result": "AUTHORIZED", "new_token": True}]
    assert steps["step-up"][0]["scope"] == "mcp notes:delete"
    assert steps["delete_notes"][0]["result"] == {"result": "deleted"}
    assert len(pages) == 2 and "notes:delete" in pages[1]


# -- two replicas on one Redis ---------------------------------------------------------------------


async def test_two_replicas_on_redis_share_sign_ins_across_refreshes_and_a_restart(
    entra_like: EntraLike,  # noqa: F811
    redis_server: Redis,  # noqa: F811
) -> None:
    """Two uvicorn processes, one Redis. A client registered at replica two is known to one; the
    user signs in through one; the code is exchanged at two; refreshes alternate, two at once
    (one at each) get one successor (the grace window); replica two's process is stopped and
    started again; nothing is lost: tokens validate at both, the family goes on, and the
    provider's token reaches a tool on the restarted replica."""
    issuer = broker_issuer(entra_like)
    port_one, port_two = int(urlsplit(issuer).port or 0), free_port()
    at = {1: f"http://127.0.0.1:{port_one}", 2: f"http://127.0.0.1:{port_two}"}
    path = urlsplit(issuer).path
    environment = {"BROKER_ISSUER": issuer, "BROKER_STORAGE": redis_server.url, "BROKER_SECRET": SECRET,
                   "PROVIDER_ISSUER": entra_like.issuer}  # fmt: skip
    with replica(port_one, environment), ExitStack() as two:
        two.enter_context(replica(port_two, environment))
        async with httpx2.AsyncClient(timeout=20) as http:
            registered = await http.post(f"{at[2]}{path}/register", json={
                "redirect_uris": ["http://127.0.0.1/callback"], "token_endpoint_auth_method": "none"})  # fmt: skip
            client_id = registered.json()["client_id"]
            verifier, challenge = pkce()
            browser = BrokerBrowser(http, issuer, entra_like.issuer)
            code = (await browser.sign_in(authorize_url(issuer, client_id, challenge)))["code"]
            tokens = (await http.post(f"{at[2]}{path}/token", data={
                "grant_type": "authorization_code", "code": code, "code_verifier": verifier, "client_id": client_id,
                "redirect_uri": "http://127.0.0.1:5555/callback"})).json()  # fmt: skip

            async def call_at(replica: int, access_token: str, tool: str) -> str:
                body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": tool, "arguments": {}}}
                headers = {"authorization": f"Bearer {access_token}", "accept": "application/json, text/event-stream",
                           "mcp-protocol-version": "2025-11-25"}  # fmt: skip
                response = await http.post(f"{at[replica]}/mcp", json=body, headers=headers)
                assert response.status_code == 200, response.text
                return response.text.replace(" ", "").replace("\\", "")

            async def whoami_at(replica: int, access_token: str) -> None:
                answer = await call_at(replica, access_token, "whoami")
                assert '"sub":"alice"' in answer, answer

            async def refresh_at(replica: int, token: str) -> dict[str, Any]:
                response = await http.post(f"{at[replica]}{path}/token", data={
                    "grant_type": "refresh_token", "refresh_token": token, "client_id": client_id})  # fmt: skip
                assert response.status_code == 200, response.text
                return dict(response.json())

            await whoami_at(1, tokens["access_token"])
            await whoami_at(2, tokens["access_token"])
            for one_or_two in (1, 2, 1, 2):
                tokens = await refresh_at(one_or_two, tokens["refresh_token"])
                await whoami_at(3 - one_or_two, tokens["access_token"])
            both = await asyncio.gather(refresh_at(1, tokens["refresh_token"]), refresh_at(2, tokens["refresh_token"]))
            assert both[0]["refresh_token"] == both[1]["refresh_token"]  # one successor, nobody logged out
            tokens = both[0]
            two.close()  # replica two's process stops ...
            with replica(port_two, environment):  # ... and a new one starts
                await whoami_at(2, tokens["access_token"])  # the signing keys are shared
                tokens = await refresh_at(2, tokens["refresh_token"])
                profile = await call_at(2, tokens["access_token"], "provider_profile")  # the provider's token
                assert '"isError":false' in profile and "alice@example.com" in profile, profile
            tokens = await refresh_at(1, tokens["refresh_token"])
            await whoami_at(1, tokens["access_token"])


@contextmanager
def replica(port: int, environment: dict[str, str]) -> Iterator[None]:
    """One broker replica (tests/broker/mcp_server.py) in a uvicorn process of its own."""
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, **environment, "PYTHONPATH": str(root)}
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "tests.broker.mcp_server:app", "--host", "127.0.0.1", "--port", str(port),
         "--log-level", "warning"],
        env=env, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        wait_for_port(port, process, "a broker replica")
        yield
    finally:
        stop_process(process)


# -- a real browser ----------------------------------------------------------------------------------


async def test_chromium_through_the_consent_page_and_the_providers_login(
    entra_like: EntraLike,  # noqa: F811
    tmp_path: Path,
) -> None:
    """Debian's Chromium clicks Approve on the broker's page, logs in at the provider, lands at the
    client with a code; a second client in the same browser (the provider would sign the user in
    silently) meets the broker's consent page, naming it, and is denied."""
    client_port = free_port()
    redirect = f"http://127.0.0.1:{client_port}/callback"

    async def callback(request: Request) -> JSONResponse:  # the MCP client's loopback redirect URI
        return JSONResponse(dict(request.query_params))

    async with served(entra_like, str(tmp_path / "broker.db")) as stack:
        async with httpx2.AsyncClient() as http:
            ids = []
            for name in ("Notes CLI", '<img src=x onerror="alert(1)">Evil'):
                metadata = {"redirect_uris": [redirect], "token_endpoint_auth_method": "none", "client_name": name}
                answer = await http.post(f"{stack.issuer}/register", json=metadata)
                ids.append(answer.json()["client_id"])
        (verifier, challenge), (_, other) = pkce(), pkce()
        urls = [
            authorize_url(stack.issuer, ids[0], challenge, redirect_uri=redirect),
            authorize_url(stack.issuer, ids[1], other, redirect_uri=redirect, state="evil-state"),
        ]
        with serve(Starlette(routes=[Route("/callback", callback)]), port=client_port):
            seen = await asyncio.to_thread(in_chromium, "broker_sign_in.mjs", *urls, redirect)
        assert seen["consent"] == {"name": "Notes CLI", "scopes": ["mcp"]}
        assert seen["signedIn"]["state"] == "client-state" and seen["signedIn"]["iss"] == stack.issuer
        async with httpx2.AsyncClient() as http:
            tokens = await http.post(f"{stack.issuer}/token", data={
                "grant_type": "authorization_code", "code": seen["signedIn"]["code"], "code_verifier": verifier,
                "client_id": ids[0], "redirect_uri": redirect})  # fmt: skip
        assert tokens.status_code == 200, tokens.text
        assert seen["secondConsent"] == '<img src=x onerror="alert(1)">Evil'  # shown as text, not run
        assert seen["denied"] == {"error": "access_denied", "error_description": "The user denied the request",
                                  "state": "evil-state", "iss": stack.issuer}  # fmt: skip
        assert seen["dialogs"] == []


# -- docs/broker.md, as written ---------------------------------------------------------------------


async def test_the_documented_broker_signs_the_sdk_client_in_and_its_tools_work(
    entra_like: EntraLike,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """docs/broker.md's server, its hosts pointed at loopback and Microsoft's login and Graph at
    the Entra-shaped provider: the MCP SDK client signs in (registration), calls whoami, reaches
    "Graph" with the provider's token, and is stepped up for delete_notes."""
    from ..test_docs import BROKER_ENVIRONMENT, ROOT, blocks

    (block,) = [b for b in blocks(ROOT / "docs" / "broker.md") if b.language == "python" and "Broker.of(" in b.code]
    for name, value in BROKER_ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("ENTRA_TENANT_ID", entra_like.tenant)
    monkeypatch.chdir(tmp_path)  # the broker's SQLite file, where the reader runs it
    origin = broker_issuer(entra_like).removesuffix("/oauth")
    tenant = 'tenant=os.environ["ENTRA_TENANT_ID"],'
    assert tenant in block.code and "https://graph.microsoft.com/v1.0/me" in block.code
    code = (
        block.code.replace("https://mcp.example.com", origin)
        .replace(tenant, f'{tenant} authority="{entra_like.origin}", allow_http=True,')
        .replace("https://graph.microsoft.com/v1.0/me", f"{entra_like.origin}/oidc/userinfo")
    )
    namespace: dict[str, Any] = {"__name__": "docs.broker"}
    exec(compile(code, str(block), "exec", dont_inherit=True), namespace)
    stack = Served(namespace["broker"], f"{origin}/mcp", namespace["broker"].issuer, entra_like)
    with serve(namespace["app"], port=int(urlsplit(origin).port or 0)):
        browser, storage = SDKBrowser(stack), MemoryStorage()
        metadata = OAuthClientMetadata(
            redirect_uris=["http://127.0.0.1:33418/callback"], client_name="docs", scope="mcp"
        )
        auth = OAuthClientProvider(
            stack.resource, metadata, storage, browser.redirect_handler, browser.callback_handler
        )
        me, profile = await call(stack, auth, "whoami", "my_profile")
        (deleted,) = await call(stack, auth, "delete_notes")
        await browser.http.aclose()
    assert me["sub"] == "oid-alice" and me["scopes"] == ["mcp"]  # Entra's preset: the user is oid
    assert profile["sub"] == "alice" and profile["email"] == "alice@example.com"
    assert deleted == {"result": "deleted"} and len(browser.authorize_urls) == 2


async def test_a_browser_based_client_signs_in_through_the_broker_in_chromium(
    entra_like: EntraLike,  # noqa: F811
    tmp_path: Path,
) -> None:
    """The browser MCP client page of test_browser.py, from its own origin, through the broker:
    CORS on discovery, registration and the token endpoint; the consent page and the provider's
    login clicked in Chromium; a tool called with the broker's token; the step-up challenge read."""
    from starlette.staticfiles import StaticFiles

    from ..processes import BROWSER

    pages = Starlette(routes=[])
    pages.mount("/", StaticFiles(directory=BROWSER / "pages", html=True))
    page_port = free_port()
    async with served(entra_like, str(tmp_path / "broker.db")) as stack:
        with serve(pages, port=page_port):
            seen = await asyncio.to_thread(
                in_chromium, "broker_client.mjs", f"http://localhost:{page_port}", stack.resource
            )
    flow: dict[str, Any] = {step.pop("step"): step for step in seen["flow"]}
    assert "error" not in flow, flow.get("error")
    assert seen["consent"] == "browser test"
    assert flow["metadata"] == {"resource": stack.resource, "issuer": stack.issuer}
    assert flow["registered"] == {"status": 201, "has_secret": False}
    assert flow["redirected"] == {"state_ok": True, "iss": stack.issuer}
    assert flow["token"] == {"status": 200, "token_type": "Bearer", "scope": "mcp"}
    assert flow["whoami"]["status"] == 200 and '\\"sub\\":\\"alice\\"' in flow["whoami"]["body"].replace(" ", "")
    assert flow["step-up"]["status"] == 403 and 'scope="mcp notes:delete"' in flow["step-up"]["challenge"]
