"""Client ID Metadata Documents on the local authorization server: the URL rules, the checks on
the document, caching, and a refused document at /authorize (real documents on 127.0.0.1)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
from authlib.oauth2.rfc6749.errors import InvalidClientError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mcp_auth_middleware.server import LocalAuthorizationServer
from mcp_auth_middleware.server.client_metadata import ClientMetadataDocuments
from mcp_auth_middleware.testing import serve

REDIRECT = "http://127.0.0.1:5555/callback"


class DocumentHost:
    def __init__(self) -> None:
        self.documents: dict[str, tuple[bytes, str]] = {}
        self.base = ""
        self.app = Starlette(routes=[Route("/{name}", self.handle)])

    async def handle(self, request: Request) -> Response:
        body, cache_control = self.documents.get(request.path_params["name"], (b"", ""))
        if not body:
            return Response(status_code=404)
        return Response(body, media_type="application/json", headers={"cache-control": cache_control})

    def put(self, name: str, document: dict[str, Any] | bytes, cache_control: str = "max-age=60") -> str:
        url = f"{self.base}/{name}"
        body = document if isinstance(document, bytes) else httpx2.Response(200, json=document).content
        self.documents[name] = (body.replace(b"{URL}", url.encode()), cache_control)
        return url


@pytest.fixture(scope="module")
def host() -> Iterator[DocumentHost]:
    documents = DocumentHost()
    with serve(documents.app) as base:
        documents.base = base
        yield documents


def document(**overrides: Any) -> dict[str, Any]:
    return {"client_id": "{URL}", "redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none", **overrides}


@pytest.mark.parametrize(
    ("client_id", "development", "is_url"),
    [
        ("https://app.example/client.json", False, True),
        ("https://app.example", False, False),  # a path is required
        ("https://app.example/", False, False),
        ("https://app.example/a/../client.json", False, False),
        ("https://user:pw@app.example/client.json", False, False),
        ("https://app.example/client.json#x", False, False),
        ("http://app.example/client.json", True, False),
        ("http://127.0.0.1:9/client.json", False, False),  # loopback http only in development
        ("http://127.0.0.1:9/client.json", True, True),
        ("plain-client-id", False, False),
    ],
)
def test_which_client_ids_are_document_urls(client_id: str, development: bool, is_url: bool) -> None:
    assert ClientMetadataDocuments(development=development).is_document_url(client_id) is is_url


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (document(client_id="https://elsewhere.example/c.json"), "is not the document's URL"),
        (document(client_secret="s"), "no shared secret"),
        (document(token_endpoint_auth_method="client_secret_basic"), "no shared secret"),
        (document(redirect_uris=[]), "no redirect_uris"),
        (b"[1, 2]", "not a JSON object"),
        (b"{" + b" " * 6000 + b"}", "larger than 5120 bytes"),
    ],
)
async def test_unusable_documents_are_refused(host: DocumentHost, body: Any, why: str) -> None:
    url = host.put("bad.json", body)
    with pytest.raises(InvalidClientError) as refused:
        await ClientMetadataDocuments(development=True).metadata(url)
    assert why in str(refused.value.description)


async def test_documents_are_cached_as_their_headers_say(host: DocumentHost) -> None:
    documents = ClientMetadataDocuments(development=True)
    cached, uncached = host.put("cached.json", document()), host.put("fresh.json", document(), "no-store")
    for _ in range(3):
        await documents.metadata(cached)
        await documents.metadata(uncached)
    assert documents.fetches == 1 + 3


def documents_server(development: bool) -> LocalAuthorizationServer:
    """The local authorization server, taking Client ID Metadata Documents."""
    return LocalAuthorizationServer(
        "https://as.example", client_metadata_documents=ClientMetadataDocuments(development=development)
    )


def client_of(server: LocalAuthorizationServer) -> httpx2.AsyncClient:
    return httpx2.AsyncClient(transport=httpx2.ASGITransport(app=server.app), base_url="https://as.example")


async def test_authorize_with_a_document_client(host: DocumentHost) -> None:
    url = host.put("app.json", document(client_name="Doc App"))
    server = documents_server(development=True)
    assert server.metadata["client_id_metadata_document_supported"] is True
    async with client_of(server) as c:
        params = {
            "response_type": "code",
            "client_id": url,
            "redirect_uri": REDIRECT,
            "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            "code_challenge_method": "S256",
        }
        accepted = await c.get("/authorize", params=params)
        assert accepted.status_code == 302 and accepted.headers["location"].startswith(REDIRECT)
        elsewhere = await c.get("/authorize", params={**params, "redirect_uri": "http://127.0.0.1:1/other"})
        assert elsewhere.status_code == 400  # not in the document's redirect_uris: never redirected to
        missing = await c.get("/authorize", params={**params, "client_id": f"{host.base}/missing.json"})
        assert missing.status_code in (400, 401) and missing.json()["error"] == "invalid_client"
        assert "could not be fetched" in missing.json()["error_description"]
    assert server.clients[url].client_name == "Doc App"


@pytest.fixture
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Every connection attempt beyond loopback is refused in-process and recorded, so a test
    of the address checks sends nothing off this machine even if the checks were broken."""
    import asyncio.selector_events
    import ipaddress
    import socket

    attempts: list[object] = []

    def guard(address: object) -> None:
        host = address[0] if isinstance(address, tuple) else None
        try:
            loopback = ipaddress.ip_address(str(host).partition("%")[0]).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            attempts.append(address)
            raise ConnectionRefusedError(f"test guard: no connection to {address!r}")

    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex
    real_sock_connect = asyncio.selector_events.BaseSelectorEventLoop.sock_connect

    def connect(self: socket.socket, address: object) -> None:
        guard(address)
        real_connect(self, address)  # type: ignore[arg-type]

    def connect_ex(self: socket.socket, address: object) -> int:
        guard(address)
        return real_connect_ex(self, address)  # type: ignore[arg-type]

    async def sock_connect(self: object, sock: socket.socket, address: object) -> None:
        guard(address)
        await real_sock_connect(self, sock, address)  # type: ignore[arg-type]

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(asyncio.selector_events.BaseSelectorEventLoop, "sock_connect", sock_connect)
    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host: object, port: object, *args: object, **kwargs: object) -> object:
        if host == "internal.example":  # a name that resolves to a private address
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.5", port))]
        return real_getaddrinfo(host, port, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return attempts


def authorize_params(client_id: str, redirect_uri: str) -> dict[str, str]:
    """An authorization request with PKCE S256, as an MCP client sends it."""
    return {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        "code_challenge_method": "S256",
    }


PRIVATE_DOCUMENTS = [
    "https://10.0.0.1/client.json",
    "https://169.254.169.254/latest/client.json",
    "https://127.0.0.1/client.json",
    "https://[::1]/client.json",
    "https://0.0.0.0/client.json",
    "https://2130706433/client.json",
    "https://internal.example/client.json",
]


LOOPBACK_DOCUMENTS = {PRIVATE_DOCUMENTS[2], PRIVATE_DOCUMENTS[3], PRIVATE_DOCUMENTS[5]}


@pytest.mark.parametrize(
    ("client_id", "development"),
    # Loopback is allowed in development (that is what it is for): every other address is not.
    [(c, False) for c in PRIVATE_DOCUMENTS] + [(c, True) for c in PRIVATE_DOCUMENTS if c not in LOOPBACK_DOCUMENTS],
)
async def test_the_authorization_server_cannot_be_made_to_scan_the_network(
    loopback_only: list[object], client_id: str, development: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """CIMD, Security Considerations (SSRF): from /authorize and from /token (which any web page
    can call, CORS `*`), a client_id naming a private, link-local, unspecified or (outside
    development) loopback address is refused before any connection, and the answer says
    nothing about what a connection would have met."""
    server = documents_server(development=development)
    async with client_of(server) as c:
        authorize = await c.get(
            "/authorize",
            params=authorize_params(client_id, REDIRECT),
        )
        token = await c.post(
            "/token",
            data={"grant_type": "authorization_code", "code": "x", "client_id": client_id, "code_verifier": "v" * 43},
            headers={"origin": "https://evil.example"},
        )
    for answer in (authorize, token):
        assert answer.status_code in (400, 401)
        assert answer.json() == {
            "error": "invalid_client",
            "error_description": "Client metadata document refused: its metadata document could not be fetched",
        }
    assert loopback_only == []  # no connection was even attempted
    assert "not a public address" in caplog.text  # the operator's log says why


async def test_a_document_served_as_html_is_refused(host: DocumentHost) -> None:
    """The CIMD draft requires a JSON document: an HTML page (a login page, an error page) is not one."""

    async def html(request: Request) -> Response:
        return Response(b'{"client_id": "x", "redirect_uris": []}', media_type="text/html")

    server = Starlette(routes=[Route("/client.json", html)])
    with serve(server) as base, pytest.raises(InvalidClientError) as refused:
        await ClientMetadataDocuments(development=True).metadata(f"{base}/client.json")
    assert "served as text/html, not application/json" in str(refused.value.description)


@pytest.mark.parametrize(
    "redirect_uri",
    ["javascript:alert(document.cookie)", "http://attacker.example/callback", "https://app.example/cb#fragment"],
)
async def test_a_documents_redirect_uris_are_checked_as_registration_checks_them(
    host: DocumentHost, redirect_uri: str
) -> None:
    """RFC 6749 §3.1.2, OAuth 2.1 §2.3.1: the same rule as RFC 7591 registration, so a code is
    never sent to `javascript:` or over plain http to another host."""
    url = host.put(f"redirect-{abs(hash(redirect_uri))}.json", document(redirect_uris=[redirect_uri]))
    server = documents_server(development=True)
    async with client_of(server) as c:
        answer = await c.get(
            "/authorize",
            params=authorize_params(url, redirect_uri),
        )
    assert answer.status_code in (400, 401) and "location" not in answer.headers
    assert answer.json()["error"] == "invalid_client"
    assert "is not an https or loopback http URL without fragment" in answer.json()["error_description"]
