"""Which browser origins may call the MCP endpoint: the defence against DNS rebinding.

MCP Streamable HTTP transport, Security Warning: servers MUST validate the `Origin` header
of every incoming connection. A request that carries an `Origin` is served when that origin
is the resource's own, is configured, or (only when the resource itself is on loopback) is a
loopback origin; requests without `Origin` (non-browser clients) are not affected.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from .config import Resource
from .urls import origin_of
from .values import LOOPBACK_HOSTS

__all__ = ["OriginCheck"]


class OriginCheck:
    """`allows(origin)` for one resource; the common answers are one set lookup."""

    def __init__(self, resource: Resource, allowed: frozenset[str] = frozenset()) -> None:
        """`allowed`: serialised origins (BrowserAccess.origins), besides the resource's own."""
        own = origin_of(resource.url)
        self.origins = allowed | ({own} if own is not None else set())
        self._known = {origin.encode() for origin in self.origins}
        self.loopback_allowed = resource.loopback

    def allows(self, origin: bytes) -> bool:
        if origin in self._known:
            return True
        normal = origin_of(origin.decode("latin-1"))
        if normal is None:
            return False  # "null", or not an http(s) origin
        if normal in self.origins:
            return True
        return self.loopback_allowed and (urlsplit(normal).hostname or "") in LOOPBACK_HOSTS
