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


async def test_authorize_with_a_document_client(host: DocumentHost) -> None:
    url = host.put("app.json", document(client_name="Doc App"))
    server = LocalAuthorizationServer(
        "https://as.example", client_metadata_documents=ClientMetadataDocuments(development=True)
    )
    assert server.metadata["client_id_metadata_document_supported"] is True
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=server.app), base_url="https://as.example") as c:
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
