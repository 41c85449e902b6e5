"""The RFC 9728 Protected Resource Metadata document and the well-known paths it is served at."""

from __future__ import annotations

import json
from collections.abc import Iterable
from urllib.parse import urlsplit

from .challenge import RawResponse, check_scope_token

__all__ = ["WELL_KNOWN", "ResourceMetadata", "check_resource", "well_known_path"]

WELL_KNOWN = "/.well-known/oauth-protected-resource"


def check_resource(resource: str) -> str:
    """RFC 8707 §2: an absolute http(s) URI without fragment; kept byte for byte as configured (RFC 9728 §3.3)."""
    parts = urlsplit(resource)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc or parts.fragment or "#" in resource:
        raise ValueError(f"resource must be an absolute http(s) URI without fragment: {resource!r}")
    if '"' in resource or "\\" in resource or any(c.isspace() for c in resource):
        raise ValueError(f"resource contains characters not allowed in a URI: {resource!r}")
    return resource


def well_known_path(resource: str) -> str:
    """RFC 9728 §3.1: the well-known string goes between host and path; a lone trailing '/' is dropped."""
    path = urlsplit(resource).path
    return WELL_KNOWN + ("" if path == "/" else path)


class ResourceMetadata:
    """The document (RFC 9728 §2, §3.2; MCP authorization) and its pre-encoded response."""

    def __init__(
        self,
        resource: str,
        authorization_servers: Iterable[str],
        *,
        scopes_supported: Iterable[str] = (),
        resource_name: str | None = None,
        resource_documentation: str | None = None,
        dpop_algorithms: Iterable[str] = (),
        dpop_required: bool = False,
        max_age: int = 3600,
    ) -> None:
        self.resource = check_resource(resource)
        self.authorization_servers = list(authorization_servers)
        if not self.authorization_servers:
            raise ValueError("authorization_servers needs at least one entry (MCP authorization, RFC 9728 §2)")
        parts = urlsplit(resource)
        self.path = well_known_path(resource)
        self.url = f"{parts.scheme}://{parts.netloc}{self.path}"
        # MCP authorization, Scope Selection: offline_access is never advertised.
        scopes = [check_scope_token(s) for s in dict.fromkeys(scopes_supported) if s != "offline_access"]
        document: dict[str, object] = {
            "resource": self.resource,
            "authorization_servers": self.authorization_servers,
            "scopes_supported": scopes,
            "bearer_methods_supported": ["header"],
            "resource_name": resource_name,
            "resource_documentation": resource_documentation,
            # RFC 9728 §2 (RFC 9449): the DPoP algorithms accepted, and whether only DPoP is.
            "dpop_signing_alg_values_supported": list(dpop_algorithms),
            "dpop_bound_access_tokens_required": True if dpop_required else None,
        }
        # RFC 9728 §3.2: members with no value are omitted.
        self.document = {k: v for k, v in document.items() if v not in (None, "", [], {})}
        body = json.dumps(self.document).encode()
        self.response: RawResponse = (
            200,
            [
                (b"content-type", b"application/json"),
                (b"x-content-type-options", b"nosniff"),
                (b"cache-control", f"public, max-age={max_age}".encode()),
            ],
            body,
        )
