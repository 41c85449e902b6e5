"""RFC 8414 / OpenID Connect discovery of an authorization server's metadata (D1, D2)."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any
from urllib.parse import urlsplit

import httpx2

from .errors import AuthorizationServerUnavailableError
from .fetch import check_fetch_url, fetch_limited

__all__ = ["Discovery", "DiscoveryError", "discover_authorization_server", "metadata_urls"]

logger = logging.getLogger("mcp_auth_middleware.discovery")


class DiscoveryError(AuthorizationServerUnavailableError):
    """No valid metadata document could be fetched for the issuer."""


def metadata_urls(issuer: str) -> list[str]:
    """D1: RFC 8414 path-inserted first, then OIDC inserted and appended forms."""
    parts = urlsplit(issuer)
    origin = f"{parts.scheme}://{parts.netloc}"
    path = parts.path.rstrip("/")
    urls = [f"{origin}/.well-known/oauth-authorization-server{path}"]
    if path:
        urls.append(f"{origin}/.well-known/openid-configuration{path}")
        urls.append(f"{origin}{path}/.well-known/openid-configuration")
    else:
        urls.append(f"{origin}/.well-known/openid-configuration")
    return urls


async def discover_authorization_server(
    issuer: str,
    *,
    http_client: httpx2.AsyncClient | None = None,
    timeout: float = 5.0,  # noqa: ASYNC109 - per URL tried, not for the whole discovery
    allow_http: bool = False,
    max_bytes: int = 256 * 1024,
) -> dict[str, Any]:
    """The authorization server's metadata; its `issuer` must equal the one asked for (D2)."""
    check_fetch_url(issuer, allow_http=allow_http)
    client = http_client or httpx2.AsyncClient(timeout=timeout, follow_redirects=False)
    problems: list[str] = []
    try:
        for url in metadata_urls(issuer):
            try:
                async with asyncio.timeout(timeout):
                    body, _ = await fetch_limited(client, "GET", url, max_bytes)
                document = json.loads(body)
            except Exception as exc:
                problems.append(f"{url}: {type(exc).__name__}: {exc}"[:200])
                continue
            if not isinstance(document, dict):
                problems.append(f"{url}: not a JSON object")
                continue
            if document.get("issuer") != issuer:
                # D2: a mismatch is a hard error, not a reason to try the next URL.
                raise DiscoveryError(f"metadata at {url} names issuer {document.get('issuer')!r}, not {issuer!r}")
            return document
    finally:
        if http_client is None:
            await client.aclose()
    logger.warning("discovery failed for %s: %s", issuer, "; ".join(problems))
    raise DiscoveryError(f"no authorization server metadata found for {issuer}: " + "; ".join(problems))


class Discovery:
    """Discovers once, lazily and without blocking startup; failures are retried on later calls."""

    def __init__(
        self,
        issuer: str,
        *,
        http_client: httpx2.AsyncClient | None = None,
        timeout: float = 5.0,
        allow_http: bool = False,
    ) -> None:
        self.issuer = issuer
        self._http_client = http_client
        self._timeout = timeout
        self._allow_http = allow_http
        self._document: dict[str, Any] | None = None
        self._lock = asyncio.Lock()

    async def document(self) -> dict[str, Any]:
        if self._document is None:
            async with self._lock:
                if self._document is None:
                    self._document = await discover_authorization_server(
                        self.issuer,
                        http_client=self._http_client,
                        timeout=self._timeout,
                        allow_http=self._allow_http,
                    )
        return self._document

    async def endpoint(self, name: str) -> str:
        value = (await self.document()).get(name)
        if not isinstance(value, str) or not value:
            raise DiscoveryError(f"the authorization server metadata has no {name}")
        return value
