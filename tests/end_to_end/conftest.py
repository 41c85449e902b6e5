"""What several end-to-end modules share."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from mcp_auth_middleware.testing import free_port


@pytest.fixture(scope="module")
def client_metadata_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Any]]:
    """An https server on 127.0.0.1 (a test CA's certificate) serving the client's metadata
    document; yields its URL and an SSL context that trusts the CA."""
    import trustme
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from mcp_auth_middleware.testing import serve

    ca = trustme.CA()
    certificate = ca.issue_cert("127.0.0.1")
    folder = tmp_path_factory.mktemp("tls")
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    certificate.private_key_pem.write_to_path(str(key_file))
    certificate.cert_chain_pems[0].write_to_path(str(cert_file))
    port = free_port()
    url = f"https://127.0.0.1:{port}/clients/e2e.json"
    document = {
        "client_id": url,
        "client_name": "CIMD e2e",
        "redirect_uris": ["http://127.0.0.1:33418/callback"],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
    }

    async def serve_document(request: Request) -> JSONResponse:
        return JSONResponse(document, headers={"cache-control": "max-age=600"})

    app = Starlette(routes=[Route("/clients/e2e.json", serve_document)])
    with serve(app, port=port, ssl_certfile=str(cert_file), ssl_keyfile=str(key_file)):
        import ssl

        context = ssl.create_default_context()
        ca.configure_trust(context)
        yield url, context
