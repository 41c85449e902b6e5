"""Resource indicators (RFC 8707): the `resource` a client asks for becomes the token's audience."""

from __future__ import annotations

from urllib.parse import urlsplit

from authlib.oauth2.rfc6749.errors import OAuth2Error

__all__ = ["InvalidTargetError", "select_resources"]


class InvalidTargetError(OAuth2Error):  # type: ignore[misc]
    """RFC 8707 §2: the requested resource is invalid or not allowed."""

    error = "invalid_target"


def select_resources(requested: list[str], granted: list[str] | None, default: str | None) -> list[str]:
    """The audience of the token being issued.

    `granted`: the resources the grant behind a token request covers (None at /authorize, and
    for grants without one); a token request may narrow them, never widen them (RFC 8707 §2.2).
    """
    for value in requested:
        parts = urlsplit(value)
        if not parts.scheme or not parts.netloc or parts.fragment or "#" in value:
            raise InvalidTargetError(description="resource must be an absolute URI without fragment")
    if granted is not None:
        if any(value not in granted for value in requested):
            raise InvalidTargetError(description="resource was not part of the grant")
        return list(requested) or list(granted)
    if requested:
        return list(requested)
    return [default] if default else []
