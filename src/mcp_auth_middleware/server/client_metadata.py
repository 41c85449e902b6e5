"""Client ID Metadata Documents: a client whose `client_id` is an https URL of its metadata.

MCP authorization (2025-11-25), Client ID Metadata Documents; draft-ietf-oauth-client-id-
metadata-document. The authorization server fetches the document instead of keeping a
registration: it must be small JSON whose `client_id` is exactly its own URL, describing a
public client (no shared secret). Documents are cached as their HTTP caching headers say,
within bounds.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx2
from authlib.oauth2.rfc6749.errors import InvalidClientError
from authlib.oauth2.rfc7591.errors import InvalidRedirectURIError

from ..challenge import safe_description
from ..fetch import UnexpectedStatusError, fetch_limited
from ..values import LOOPBACK_HOSTS
from .public_addresses import public_target
from .registration import check_redirect_uris

__all__ = ["ClientMetadataDocuments"]

logger = logging.getLogger("mcp_auth_middleware.server")

_MAX_AGE = re.compile(r"max-age=(\d+)", re.IGNORECASE)
_NO_CACHE = re.compile(r"no-store|no-cache", re.IGNORECASE)
_SECRET_METHODS = ("client_secret_basic", "client_secret_post", "client_secret_jwt")


@dataclass(frozen=True)
class _Document:
    metadata: dict[str, Any]
    until: float


class ClientMetadataDocuments:
    """Fetches, checks and caches client metadata documents."""

    def __init__(
        self,
        *,
        http_client: httpx2.AsyncClient | None = None,
        development: bool = False,
        max_bytes: int = 5 * 1024,
        timeout: float = 5.0,
        default_ttl: float = 300.0,
        max_ttl: float = 86400.0,
        max_documents: int = 1000,
    ) -> None:
        self._client = http_client
        self.development = development  # loopback http document URLs, for local tests only
        self.max_bytes, self.timeout = max_bytes, timeout
        self.default_ttl, self.max_ttl = default_ttl, max_ttl
        self.max_documents = max_documents
        self._cache: dict[str, _Document] = {}
        self.fetches = 0

    def is_document_url(self, client_id: str) -> bool:
        """A client id that names a metadata document (the draft's rules for the URL)."""
        try:
            parts = urlsplit(client_id)
        except ValueError:
            return False
        loopback_http = self.development and parts.scheme == "http" and (parts.hostname or "") in LOOPBACK_HOSTS
        return (
            (parts.scheme == "https" or loopback_http)
            and bool(parts.hostname)
            and parts.path not in ("", "/")
            and not parts.fragment
            and parts.username is None
            and parts.password is None
            and "/./" not in parts.path + "/"
            and "/../" not in parts.path + "/"
        )

    async def metadata(self, client_id: str) -> dict[str, Any]:
        """The checked document for `client_id`; InvalidClientError saying why when it is unusable."""
        cached = self._cache.get(client_id)
        if cached is not None and cached.until > time.monotonic():
            return cached.metadata
        metadata, ttl = await self._fetch(client_id)
        if ttl > 0:
            if len(self._cache) >= self.max_documents:
                self._cache.clear()
            self._cache[client_id] = _Document(metadata, time.monotonic() + ttl)
        return metadata

    async def _fetch(self, client_id: str) -> tuple[dict[str, Any], float]:
        if self._client is None:
            self._client = httpx2.AsyncClient(timeout=self.timeout, follow_redirects=False)
        self.fetches += 1
        try:
            async with asyncio.timeout(self.timeout):
                # CIMD, Security Considerations (SSRF): the address is resolved and checked
                # first, and the request goes to that checked address (no second lookup).
                url, host, extensions = await public_target(client_id, loopback=self.development)
                body, headers = await fetch_limited(
                    self._client, "GET", url, self.max_bytes, headers={"host": host}, extensions=extensions
                )
        except (OSError, httpx2.HTTPError, TimeoutError, UnexpectedStatusError) as exc:
            # Why goes to the log, never to the client: an error text would let any web page
            # the developer opens map their network through this server.
            logger.warning("client metadata document %s not fetched: %s: %s", client_id, type(exc).__name__, exc)
            raise _refused("its metadata document could not be fetched") from None
        except ValueError:
            raise _refused(f"its metadata document is larger than {self.max_bytes} bytes") from None
        try:
            document = json.loads(body)
        except ValueError:
            raise _refused("its metadata document is not JSON") from None
        media_type = headers.get("content-type", "").partition(";")[0].strip().lower()
        if media_type != "application/json" and not media_type.endswith("+json"):
            raise _refused(f"its metadata document is served as {media_type or 'no type'}, not application/json")
        if not isinstance(document, dict):
            raise _refused("its metadata document is not a JSON object")
        if document.get("client_id") != client_id:
            raise _refused("the client_id in its metadata document is not the document's URL")
        if "client_secret" in document or document.get("token_endpoint_auth_method") in _SECRET_METHODS:
            raise _refused("a metadata document describes a public client: no shared secret")
        redirect_uris = document.get("redirect_uris")
        if not isinstance(redirect_uris, list) or not redirect_uris:
            raise _refused("its metadata document has no redirect_uris")
        try:
            check_redirect_uris(redirect_uris)
        except InvalidRedirectURIError as exc:
            raise _refused(str(exc.description)) from None
        return document, self._ttl(headers.get("cache-control", ""))

    def _ttl(self, cache_control: str) -> float:
        if _NO_CACHE.search(cache_control):
            return 0.0
        match = _MAX_AGE.search(cache_control)
        return min(float(match.group(1)), self.max_ttl) if match else self.default_ttl

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()


def _refused(why: str) -> InvalidClientError:
    return InvalidClientError(description=safe_description(f"Client metadata document refused: {why}"))
