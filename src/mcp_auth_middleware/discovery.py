"""Finding an authorization server's metadata from its issuer: RFC 8414 §3, then OpenID Connect Discovery 1.0 §4."""

from __future__ import annotations

import asyncio
import copy
import time
from typing import Any
from urllib.parse import urlsplit

import httpx2

from .errors import AuthError, ConfigurationError, DiscoveryError, mismatch_hint, shown
from .fetch import NotJSONError, UnexpectedStatusError, check_fetch_url, describe_failure, fetch_limited, json_body
from .resource_metadata import WELL_KNOWN, well_known_path

__all__ = ["Discovery", "discover_authorization_server", "discover_resource", "metadata_urls"]


def metadata_urls(issuer: str) -> list[str]:
    """RFC 8414 §3 path-inserted first, then OIDC inserted and appended forms."""
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
    """The authorization server's metadata; its `issuer` must equal the one asked for.

    Raises ConfigurationError when the server answered and the answer cannot work (an `issuer`
    that differs, RFC 8414 §3.3; no metadata document at any well-known URL), and
    DiscoveryError (503, retry later) when it could not be reached.
    """
    check_fetch_url(issuer, allow_http=allow_http)
    client = http_client or httpx2.AsyncClient(timeout=timeout, follow_redirects=False)
    problems: list[str] = []
    reached = True  # every URL answered (with a 4xx or something that is not metadata)
    try:
        for url in metadata_urls(issuer):
            try:
                async with asyncio.timeout(timeout):
                    body, headers = await fetch_limited(client, "GET", url, max_bytes)
                document = json_body(body, headers, url)
            except UnexpectedStatusError as exc:
                reached = reached and not exc.transient
                problems.append(f"{url}: {exc}")
                continue
            except NotJSONError as exc:
                problems.append(str(exc)[:300])
                continue
            except ValueError as exc:  # too large
                problems.append(f"{url}: {exc}"[:200])
                continue
            except (OSError, httpx2.HTTPError, TimeoutError) as exc:  # unreachable, timed out, TLS
                reached = False
                problems.append(f"{url}: {describe_failure(exc, url)}")
                continue
            if not isinstance(document, dict):
                problems.append(f"{url}: not a JSON object")
                continue
            found = document.get("issuer")
            if found != issuer:
                # RFC 8414 §3.3: a mismatch is a hard error, not a reason to try the next URL.
                raise ConfigurationError(
                    f"the metadata at {url} names issuer {shown(found)}, but the configured issuer is "
                    f"{issuer!r}{mismatch_hint(issuer, found)}: configure the issuer exactly as the "
                    "authorization server names itself"
                )
            return document
    finally:
        if http_client is None:
            await client.aclose()
    if reached:
        raise ConfigurationError(f"no authorization server metadata for issuer {issuer!r}: " + "; ".join(problems))
    # Not logged here: whoever asked (key source, startup check, request) reports it once.
    raise DiscoveryError(
        "The authorization server could not be reached",
        detail=f"discovery for {issuer}: " + "; ".join(problems),
    )


async def discover_resource(
    url: str,
    *,
    http_client: httpx2.AsyncClient | None = None,
    timeout: float = 5.0,  # noqa: ASYNC109 - per URL tried
    allow_http: bool = False,
    max_bytes: int = 64 * 1024,
) -> dict[str, Any] | None:
    """The protected-resource metadata of an MCP server URL, where clients look for it (RFC
    9728 §3.1; MCP authorization, Protected Resource Metadata Discovery): the path-inserted
    well-known URI, then the root one. None when neither holds a JSON object."""
    parts = urlsplit(check_fetch_url(url, allow_http=allow_http))
    origin = f"{parts.scheme}://{parts.netloc}"
    client = http_client or httpx2.AsyncClient(timeout=timeout, follow_redirects=False)
    try:
        for path in dict.fromkeys((well_known_path(url), WELL_KNOWN)):
            try:
                async with asyncio.timeout(timeout):
                    body, headers = await fetch_limited(client, "GET", origin + path, max_bytes)
                document = json_body(body, headers, origin + path)
            except (ValueError, httpx2.HTTPError, TimeoutError):
                continue
            if isinstance(document, dict):
                return document
    finally:
        if http_client is None:
            await client.aclose()
    return None


class Discovery:
    """Discovers once, lazily and without blocking startup.

    A failure is remembered for a while (`retry_interval` when the server could not be
    reached, `misconfigured_retry` when its answer cannot work), so that requests meanwhile
    get the same answer without each waiting for a fetch.
    """

    def __init__(
        self,
        issuer: str,
        *,
        http_client: httpx2.AsyncClient | None = None,
        timeout: float = 5.0,
        allow_http: bool = False,
        retry_interval: float = 2.0,
        misconfigured_retry: float = 30.0,
    ) -> None:
        self.issuer = issuer
        self._http_client = http_client
        self._timeout = timeout
        self._allow_http = allow_http
        self._retry = {False: retry_interval, True: misconfigured_retry}
        self._document: dict[str, Any] | None = None
        self._failure: tuple[AuthError, float] | None = None
        self._lock = asyncio.Lock()

    async def document(self) -> dict[str, Any]:
        if self._document is None:
            async with self._lock:
                if self._document is None:
                    if self._failure is not None and time.monotonic() < self._failure[1]:
                        raise copy.copy(self._failure[0])  # a fresh exception: no shared traceback
                    try:
                        self._document = await discover_authorization_server(
                            self.issuer,
                            http_client=self._http_client,
                            timeout=self._timeout,
                            allow_http=self._allow_http,
                        )
                    except (ConfigurationError, DiscoveryError) as exc:
                        until = time.monotonic() + self._retry[isinstance(exc, ConfigurationError)]
                        self._failure = (copy.copy(exc), until)
                        raise
        return self._document

    async def endpoint(self, name: str) -> str:
        value = (await self.document()).get(name)
        if not isinstance(value, str) or not value:
            raise ConfigurationError(f"the authorization server metadata of {self.issuer} has no {name}")
        return value
