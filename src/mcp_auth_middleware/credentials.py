"""Finding the bearer token in a request, and refusing it anywhere but the header (B1, M20)."""

from __future__ import annotations

from typing import NamedTuple
from urllib.parse import parse_qsl

from starlette.types import Scope

from .errors import InvalidRequestError, InvalidTokenError

__all__ = ["Credentials", "check_token_syntax", "find_credentials", "form_holds_token"]

_FORM = b"application/x-www-form-urlencoded"
# RFC 6750 b64token characters (with "=" anywhere, as some opaque tokens have it).
_B64TOKEN = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/="


class Credentials(NamedTuple):
    """What one pass over the headers found."""

    scheme: str | None  # lower-cased; None without an Authorization header
    token: str | None  # None unless the scheme is Bearer
    form_body: bool  # a form-encoded body, which could hold a token (B1)


def find_credentials(scope: Scope, *, max_token_length: int, max_headers: int = 200) -> Credentials:
    """Scan the headers once.

    Raises InvalidRequestError for a malformed request (two Authorization headers, a token in
    the query string: M20 says it never authenticates) and InvalidTokenError for a Bearer
    value that cannot be a token. `token` is None when there is no Bearer token at all.
    """
    headers = scope["headers"]
    if len(headers) > max_headers:
        raise InvalidRequestError("The request carries too many headers")
    authorization: bytes | None = None
    form_body = False
    for name, value in headers:
        if name == b"authorization":
            if authorization is not None:
                raise InvalidRequestError("The request carries more than one Authorization header")
            authorization = value
        elif name == b"content-type":
            form_body = value[: len(_FORM)].lower() == _FORM

    query = scope.get("query_string")
    if query and b"access_token" in query and _query_holds_token(query):
        raise InvalidRequestError("Access tokens are only accepted in the Authorization header")

    if authorization is None:
        return Credentials(None, None, form_body)
    scheme, _, raw = authorization.partition(b" ")
    if scheme.lower() != b"bearer":  # B4: the scheme is case-insensitive
        return Credentials(scheme.decode("latin-1").lower(), None, form_body)
    if raw[:1] == b" " or raw[-1:] == b" ":
        raw = raw.strip(b" ")
    # Only the cheap checks here; each validator checks the token's syntax on its cold path
    # (see check_token_syntax), so a cached token costs no scan.
    if not raw or len(raw) > max_token_length or not raw.isascii() or b" " in raw:
        raise InvalidTokenError("The access token is malformed")
    return Credentials("bearer", raw.decode("ascii"), form_body)


def check_token_syntax(token: str) -> None:
    """RFC 6750 b64token characters only, for validators to call before any work."""
    if token.encode("ascii", "replace").translate(None, _B64TOKEN):
        raise InvalidTokenError("The access token is malformed")


def _query_holds_token(query: bytes) -> bool:
    pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True)
    return any(key == "access_token" for key, _ in pairs)


def form_holds_token(body: bytes) -> bool:
    """B1: a token in a form-encoded body (RFC 6750 §2.2) is refused, alone or with the header."""
    return _query_holds_token(body)
