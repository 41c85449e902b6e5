"""The RFC 9728 Protected Resource Metadata document and the well-known paths it is served at."""

from __future__ import annotations

import json
from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.types import Receive, Scope, Send

from .challenge import RawResponse, send_response
from .config import AuthConfig
from .urls import WELL_KNOWN, well_known_path
from .values import check_scope_token

__all__ = ["WELL_KNOWN", "ResourceMetadata", "well_known_path"]


_METHOD_NOT_ALLOWED: RawResponse = (405, [(b"allow", b"GET, HEAD, OPTIONS")], b"")


class ResourceMetadata:
    """The document (RFC 9728 §2, §3.2; MCP authorization) and its pre-encoded response; an
    ASGI endpoint that serves it (RFC 9728 §3.2: GET)."""

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
        self.resource = resource
        self.authorization_servers = list(authorization_servers)
        if not self.authorization_servers:
            raise ValueError("authorization_servers needs at least one entry (MCP authorization, RFC 9728 §2)")
        parts = urlsplit(resource)
        self.path = well_known_path(resource)
        self.origin = f"{parts.scheme}://{parts.netloc}"  # the base of the URLs clients use
        self.url = self.origin + self.path
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

    @classmethod
    def for_config(cls, config: AuthConfig, issuers: Iterable[str] = ()) -> ResourceMetadata:
        """The document of a configuration; `issuers` (the validator's) when it names no
        authorization server itself."""
        dpop = config.dpop
        supported = config.scopes_supported
        return cls(
            config.resource.url,
            config.authorization_servers or tuple(issuers),
            scopes_supported=sorted(config.scopes.mentioned()) if supported is None else supported,
            resource_name=config.resource_name,
            resource_documentation=config.resource_documentation,
            dpop_algorithms=dpop.algorithms if dpop is not None else (),
            dpop_required=dpop is not None and dpop.required,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope["method"]
        if method not in ("GET", "HEAD"):
            await send_response(send, _METHOD_NOT_ALLOWED)
            return
        await send_response(send, self.response, head=method == "HEAD")
