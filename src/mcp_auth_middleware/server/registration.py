"""Dynamic client registration (RFC 7591): open, checked against what this server supports."""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from authlib.oauth2.rfc7591 import ClientRegistrationEndpoint
from authlib.oauth2.rfc7591.errors import InvalidClientMetadataError, InvalidRedirectURIError

from ..challenge import safe_description
from ..values import LOOPBACK_HOSTS
from .bridge import owner_of
from .models import Client

__all__ = ["AUTH_METHODS", "GRANT_TYPES", "Registration", "check_client_metadata", "check_redirect_uris"]


GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials")
AUTH_METHODS = ("client_secret_basic", "client_secret_post", "none")


def check_redirect_uris(redirect_uris: object) -> list[str]:
    """The redirect URIs of a client, registered (RFC 7591) or described by its metadata
    document (CIMD), or InvalidRedirectURIError: https, or http on loopback, absolute and
    without fragment (RFC 6749 §3.1.2, OAuth 2.1 §2.3.1). Never `javascript:` or `data:`,
    never plain http to another host."""
    if not isinstance(redirect_uris, list) or not all(isinstance(u, str) for u in redirect_uris):
        raise InvalidRedirectURIError(description="redirect_uris must be a list of URLs")
    for uri in redirect_uris:
        parts = urlsplit(uri)
        loopback = parts.scheme == "http" and (parts.hostname or "") in LOOPBACK_HOSTS
        not_a_uri = any(c.isspace() or c in '"<>\\{}|^`' for c in uri)  # RFC 3986 §2
        if parts.fragment or not parts.netloc or not (parts.scheme == "https" or loopback) or not_a_uri:
            raise InvalidRedirectURIError(
                description=f"redirect_uris: {safe_description(uri[:100])} is not an https or loopback "
                "http URL without fragment (OAuth 2.1 section 2.3.1)"
            )
    return redirect_uris


def check_client_metadata(metadata: Mapping[str, Any], scopes_supported: Iterable[str]) -> None:
    """RFC 7591 §3.2.2: metadata this server cannot honour is refused, naming the member."""
    check_redirect_uris(metadata.get("redirect_uris", []))
    for member, allowed in (("grant_types", GRANT_TYPES), ("response_types", ("code",))):
        values = metadata.get(member, [])
        if not isinstance(values, list) or any(v not in allowed for v in values):
            raise InvalidClientMetadataError(description=f"{member}: only {', '.join(allowed)} are supported")
    method = metadata.get("token_endpoint_auth_method", "client_secret_basic")
    if method not in AUTH_METHODS:
        raise InvalidClientMetadataError(
            description=f"token_endpoint_auth_method: only {', '.join(AUTH_METHODS)} are supported"
        )
    scope = metadata.get("scope", "")
    unknown = [s for s in scope.split() if s not in scopes_supported] if isinstance(scope, str) else [scope]
    if unknown:
        raise InvalidClientMetadataError(
            description=f"scope: {safe_description(' '.join(map(str, unknown)))} not supported"
        )


class Registration(ClientRegistrationEndpoint):  # type: ignore[misc]
    def authenticate_token(self, request: Any) -> bool:
        return True  # open registration: this server is for development and tests

    def extract_client_metadata(self, request: Any) -> dict[str, Any]:
        check_client_metadata(request.payload.data, owner_of(self).scopes_supported)
        metadata: dict[str, Any] = super().extract_client_metadata(request)
        return metadata

    def generate_client_info(self, request: Any) -> dict[str, Any]:
        # RFC 7591 §3.2.1: every member a valid value or absent; a public client gets no
        # client_secret member at all (the TypeScript SDK's schema rejects null).
        info: dict[str, Any] = super().generate_client_info(request)
        if info.get("client_secret") is None:
            info.pop("client_secret", None)
            info.pop("client_secret_expires_at", None)
        return info

    def resolve_public_key(self, request: Any) -> None:
        return None

    def get_server_metadata(self) -> dict[str, Any]:
        return owner_of(self).metadata

    def generate_client_secret(self, request: Any) -> str | None:
        if request.payload.data.get("token_endpoint_auth_method") == "none":
            return None  # public clients (PKCE) get no secret
        return secrets.token_urlsafe(32)

    def save_client(self, client_info: dict[str, Any], client_metadata: dict[str, Any], request: Any) -> Client:
        owner = owner_of(self)
        client = owner.register_client(
            client_id=client_info["client_id"],
            client_secret=client_info.get("client_secret"),
            redirect_uris=client_metadata.get("redirect_uris", []),
            grant_types=client_metadata.get("grant_types", ["authorization_code", "refresh_token"]),
            # A registered client may later ask for any supported scope (step-up after a 403);
            # its registration `scope` is only what it asks for first.
            scope=" ".join(owner.scopes_supported),
            token_endpoint_auth_method=client_metadata.get("token_endpoint_auth_method", "client_secret_basic"),
            client_name=client_metadata.get("client_name"),
        )
        owner.keep_registration(client)
        return client
