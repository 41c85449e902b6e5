"""URLs compared as the specs compare them, with one default-port table and one reading.

Three comparisons, one normalisation (RFC 3986 §6.2.2, §6.2.3: scheme and host are
case-insensitive, a default port is the same as none):

- `origin_of`: the serialised origin of a browser's `Origin` (RFC 6454 §6.1);
- `normalized_htu`: a DPoP proof's `htu` against the request's URL (RFC 9449 §4.3), without
  query and fragment;
- `canonical_uri`: an audience against the resource (MCP authorization, Canonical Server URI),
  trailing slashes dropped; values that are not http(s) URLs compare exactly (RFC 9728 §3.3).
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple
from urllib.parse import SplitResult, urlsplit, urlunsplit

__all__ = [
    "DEFAULT_PORTS",
    "WELL_KNOWN",
    "canonical_uri",
    "differences",
    "normalized_htu",
    "origin_of",
    "well_known_path",
]

DEFAULT_PORTS = {"http": 80, "https": 443}
#: Where protected resources serve their metadata (RFC 9728 §3).
WELL_KNOWN = "/.well-known/oauth-protected-resource"


class _Authority(NamedTuple):
    parts: SplitResult
    scheme: str  # lowercase
    netloc: str  # lowercase host, [IPv6] bracketed, the port only when not the default


def _authority(url: str) -> _Authority | None:
    """The normalised scheme and authority of an http(s) URL with a host and no userinfo."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    if scheme not in DEFAULT_PORTS or not host or "@" in parts.netloc:
        return None
    if ":" in host:
        host = f"[{host}]"
    netloc = host if port in (None, DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    return _Authority(parts, scheme, netloc)


def origin_of(url: str) -> str | None:
    """The serialised origin (RFC 6454 §6.1) of a URL, or None for anything that is not an
    http(s) URL with a host (`null`, `file:`, userinfo)."""
    found = _authority(url.strip())
    return None if found is None else f"{found.scheme}://{found.netloc}"


def normalized_htu(url: str) -> str:
    """A URL as a DPoP proof's `htu` is compared (RFC 9449 §4.3): no query or fragment, an
    empty path as `/`. ValueError for anything that is not an http(s) URL."""
    found = _authority(url)
    if found is None:
        raise ValueError(f"not an http(s) URL: {url[:100]!r}")
    return urlunsplit((found.scheme, found.netloc, found.parts.path or "/", "", ""))


@lru_cache(maxsize=1024)
def canonical_uri(value: str) -> str:
    """Scheme and host case-insensitive, default port and trailing slashes dropped (MCP
    authorization, Canonical Server URI). Anything that is not an http(s) URL (`api://...`,
    a client id, a URL with userinfo) is compared exactly, as it is."""
    found = _authority(value)
    if found is None:
        return value
    path = found.parts.path.rstrip("/")  # every trailing slash: the result is its own canonical form
    return urlunsplit((found.scheme, found.netloc, path, found.parts.query, ""))


def well_known_path(resource: str) -> str:
    """RFC 9728 §3.1: the well-known string goes between host and path; a lone trailing '/' is dropped."""
    path = urlsplit(resource).path
    return WELL_KNOWN + ("" if path == "/" else path)


def differences(used: str, resource: str) -> list[str]:
    """How the URL clients use differs from `resource`, part by part (scheme, host, port, path,
    trailing slash), for a person to fix: clients refuse metadata whose `resource` is not the
    URL they used (RFC 9728 §3.3), and a token's audience must be it (RFC 8707 §2)."""
    a, b = _authority(used), _authority(resource)
    if a is None or b is None:
        return [f"{used if a is None else resource!r} is not an http(s) URL with a host"]
    found: list[str] = []
    if a.scheme != b.scheme:
        found.append(
            f"scheme: clients use {a.scheme}, resource says {b.scheme} (behind a proxy that ends TLS, resource is "
            "still https)"
        )
    host_a, host_b = (a.parts.hostname or "").lower(), (b.parts.hostname or "").lower()
    if host_a != host_b:
        found.append(f"host: clients use {host_a}, resource says {host_b}")
    port_a, port_b = _explicit_port(a), _explicit_port(b)
    if port_a != port_b:
        found.append(
            f"port: clients use {port_a or 'default'}, resource says {port_b or 'default'} (the proxy's port, "
            "not the app's)"
        )
    path_a, path_b = a.parts.path or "/", b.parts.path or "/"
    if path_a.rstrip("/") != path_b.rstrip("/"):
        found.append(f"path: clients use {path_a}, resource says {path_b} (a proxy prefix belongs in resource)")
    elif path_a != path_b:
        found.append(f"trailing slash: clients use {path_a}, resource says {path_b}")
    return found


def _explicit_port(authority: _Authority) -> int | None:
    """The port, unless it is the scheme's default (then None, as if not written)."""
    port = authority.parts.port
    return None if port in (None, DEFAULT_PORTS[authority.scheme]) else port
