"""Fetching small JSON documents from an authorization server: https only, bounded in size."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import httpx2

from .values import is_loopback

__all__ = ["UnexpectedStatusError", "check_fetch_url", "fetch_limited"]


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
    headers = {"accept": "application/json", **kwargs.pop("headers", {})}
    async with client.stream(method, url, headers=headers, **kwargs) as response:
        if response.status_code != 200:
            raise UnexpectedStatusError(response.status_code)
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > max_bytes:
                raise ValueError(f"response larger than {max_bytes} bytes")
            chunks.append(chunk)
        return b"".join(chunks), response.headers
