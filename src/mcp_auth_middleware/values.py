"""Reading configuration values the way users write them, and refusing the ones that cannot work.

Every option that takes a list (scopes, URLs, networks, claim names) accepts one
space-separated string too: `required_scopes="mcp"` means the scope `mcp`, never the
scopes `m`, `c`, `p`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

__all__ = ["LOOPBACK_HOSTS", "check_server_url", "is_loopback", "word_list", "word_lists"]

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


def word_list(value: str | Iterable[str] | None) -> list[str]:
    """A list from a list, or from one space-separated string."""
    if value is None:
        return []
    if isinstance(value, str):
        return value.split()
    values = list(value)
    if not all(isinstance(v, str) for v in values):
        raise TypeError(f"expected strings, got {values!r}")
    return values


def word_lists(mapping: Mapping[str, str | Iterable[str]] | None) -> dict[str, list[str]] | None:
    """`{"tool": "a b"}` and `{"tool": ["a", "b"]}` alike."""
    return None if mapping is None else {key: word_list(value) for key, value in mapping.items()}


def is_loopback(url: str) -> bool:
    return (urlsplit(url).hostname or "").lower() in LOOPBACK_HOSTS


def check_server_url(name: str, url: str, *, allow_http: bool = False) -> str:
    """An issuer or protected resource URL that can work: absolute, https (plain http only for
    loopback, or with `allow_http` for private networks), no query or fragment (RFC 8414 §2 for
    issuers; RFC 8707 §2 and RFC 9728 §1.2 for resources)."""
    if not isinstance(url, str) or not url.strip():
        raise ValueError(f"{name} must be a non-empty URL")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{name} must be an absolute https URL, not {url!r}")
    if parts.query or parts.fragment or "?" in url or "#" in url:
        raise ValueError(f"{name} must not have a query or fragment: {url!r}")
    if scheme == "http" and not allow_http and not is_loopback(url):
        raise ValueError(
            f"{name} {url!r} uses plain http on a host that is not loopback; use https, "
            "or pass allow_http=True (MCP_AUTH_ALLOW_HTTP=1) on a private network"
        )
    return url
