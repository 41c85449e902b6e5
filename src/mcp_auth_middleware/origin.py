"""Which browser origins may call the MCP endpoint: the defence against DNS rebinding.

MCP Streamable HTTP transport, Security Warning: servers MUST validate the `Origin` header
of every incoming connection. A request that carries an `Origin` is served when that origin
is the resource's own, is configured, or (only when the resource itself is on loopback) is a
loopback origin; requests without `Origin` (non-browser clients) are not affected.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from .config import BrowserAccess, Resource
from .urls import origin_of
from .values import LOOPBACK_HOSTS

__all__ = ["OriginCheck"]

logger = logging.getLogger("mcp_auth_middleware")


class OriginCheck:
    """`allows(origin)` for one resource; the common answers are one set lookup."""

    def __init__(self, resource: Resource, allowed: frozenset[str] = frozenset()) -> None:
        """`allowed`: serialised origins (BrowserAccess.origins), besides the resource's own."""
        own = origin_of(resource.url)
        self.origins = allowed | ({own} if own is not None else set())
        self._known = {origin.encode() for origin in self.origins}
        self.loopback_allowed = resource.loopback

    @classmethod
    def for_config(cls, resource: Resource, browsers: BrowserAccess) -> OriginCheck | None:
        """The check `browsers` asks for; None (and a WARNING) when `allowed_origins` has "*"."""
        if browsers.validation_off:
            logger.warning(
                "Origin validation is off (allowed_origins contains '*'): any web page a user opens can "
                "call %s through their browser (DNS rebinding)",
                resource.url,
            )
            return None
        return cls(resource, browsers.origins)

    def allows(self, origin: bytes) -> bool:
        if origin in self._known:
            return True
        normal = origin_of(origin.decode("latin-1"))
        if normal is None:
            return False  # "null", or not an http(s) origin
        if normal in self.origins:
            return True
        return self.loopback_allowed and (urlsplit(normal).hostname or "") in LOOPBACK_HOSTS
