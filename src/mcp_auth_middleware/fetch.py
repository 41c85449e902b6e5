"""Fetching small JSON documents from an authorization server: https only, bounded in size,
and failures said in words an operator can act on (not a library's raw error)."""

from __future__ import annotations

import json
import ssl
from typing import Any
from urllib.parse import urlsplit

import httpx2

from .values import is_loopback

__all__ = [
    "NotJSONError",
    "UnexpectedStatusError",
    "check_fetch_url",
    "describe_failure",
    "fetch_limited",
    "json_body",
    "request_limited",
]


class NotJSONError(ValueError):
    """The server answered 200 with something that is not JSON (an HTML page, often)."""


class UnexpectedStatusError(ValueError):
    """The server answered, but not with 200."""

    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status

    @property
    def transient(self) -> bool:
        """5xx and 429 may pass; any other status is an answer about our request."""
        return self.status >= 500 or self.status == 429


def check_fetch_url(url: str, *, allow_http: bool = False) -> str:
    """Only https, except loopback (development, tests) or when explicitly allowed."""
    parts = urlsplit(url)
    if parts.scheme == "https" or (parts.scheme == "http" and (allow_http or is_loopback(url))):
        return url
    if not parts.scheme or not parts.netloc:
        raise ValueError(f"{url!r} is not an absolute URL: write the scheme and host (https://...)")
    if parts.scheme != "http":
        raise ValueError(f"{url!r}: only https URLs (plain http on loopback, or with allow_http)")
    raise ValueError(
        f"{url!r} is plain http to a host that is not loopback: use https, or allow plain http on a private "
        "network (allow_http=True, MCP_AUTH_ALLOW_HTTP=1, or --allow-http)"
    )


async def fetch_limited(
    client: httpx2.AsyncClient, method: str, url: str, max_bytes: int, **kwargs: Any
) -> tuple[bytes, httpx2.Headers]:
    """A small JSON document; redirects, non-200 answers and big bodies are errors."""
    status, body, headers = await request_limited(client, method, url, max_bytes, **kwargs)
    if status != 200:
        raise UnexpectedStatusError(status)
    return body, headers


async def request_limited(
    client: httpx2.AsyncClient, method: str, url: str, max_bytes: int, **kwargs: Any
) -> tuple[int, bytes, httpx2.Headers]:
    """Any answer, its body bounded (an OAuth error body matters as much as a success)."""
    headers = {"accept": "application/json", **kwargs.pop("headers", {})}
    async with client.stream(method, url, headers=headers, **kwargs) as response:
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > max_bytes:
                raise ValueError(f"response larger than {max_bytes} bytes")
            chunks.append(chunk)
        return response.status_code, b"".join(chunks), response.headers


def json_body(body: bytes, headers: httpx2.Headers, url: str) -> Any:
    """The JSON document in a body, or NotJSONError saying what came instead."""
    try:
        return json.loads(body)
    except ValueError:
        kind = headers.get("content-type", "").partition(";")[0].strip().lower() or "no content type"
        hint = ""
        if "html" in kind or body.lstrip()[:1] == b"<":
            hint = ": an HTML page (a login, error or documentation page?); check that the URL is the JSON endpoint"
        raise NotJSONError(f"{url} served {kind}, not JSON{hint}") from None


def describe_failure(exc: BaseException, url: str) -> str:
    """What went wrong fetching `url`, with the likely fix where the error shows it."""
    parts = urlsplit(url)
    where = f"{parts.hostname}:{parts.port or (443 if parts.scheme == 'https' else 80)}"
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and len(chain) < 8:
        chain.append(current)
        current = current.__cause__ or current.__context__
    text = " ".join(str(e) for e in chain)
    if any(isinstance(e, ssl.SSLError) for e in chain) or "SSL" in text:
        if "WRONG_VERSION_NUMBER" in text or "record layer failure" in text:
            return (
                f"{where} answered in plain http where TLS was expected: the URL says https but that port serves "
                "http (use http:// for a development server on loopback, or the server's TLS port)"
            )
        if "CERTIFICATE_VERIFY_FAILED" in text:
            return f"the TLS certificate of {where} is not trusted here ({_short(chain[-1])}): a private CA?"
    if isinstance(exc, TimeoutError | httpx2.TimeoutException):
        return f"no answer from {where} in time"
    if isinstance(exc, httpx2.ConnectError):
        return f"could not connect to {where} ({_short(exc)}): is the server running, and on this port?"
    return _short(exc)


def _short(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:200] if str(exc) else type(exc).__name__
