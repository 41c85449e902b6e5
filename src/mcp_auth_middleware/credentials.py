"""Finding the bearer token in a request, and refusing it anywhere but the header (B1, M20)."""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.types import Scope

from .errors import InvalidRequestError, InvalidTokenError

__all__ = ["Credentials", "find_credentials", "form_holds_token"]

_FORM = b"application/x-www-form-urlencoded"
# RFC 6750 b64token characters (with "=" anywhere, as some opaque tokens have it).
_B64TOKEN = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/="


class Credentials:
    """What one pass over the headers found."""

    __slots__ = ("form_body", "origin", "scheme", "token")

    def __init__(self, scheme: str | None, token: str | None, form_body: bool, origin: bytes | None) -> None:
        self.scheme = scheme
        self.token = token
        self.form_body = form_body
        self.origin = origin


def find_credentials(scope: Scope, *, max_token_length: int, max_headers: int = 200) -> Credentials:
    """Scan the headers once.

    Raises InvalidRequestError for a malformed request (two Authorization headers, a token in
    the query string: M20 says it never authenticates) and InvalidTokenError for a Bearer
    value that cannot be a token. `token` is None when there is no Bearer token at all.
    """
    authorization: bytes | None = None
    form_body = False
    origin: bytes | None = None
    for index, (name, value) in enumerate(scope["headers"]):
        if name == b"authorization":
            if authorization is not None:
                raise InvalidRequestError("The request carries more than one Authorization header")
            authorization = value
        elif name == b"content-type":
            form_body = value[: len(_FORM)].lower() == _FORM
        elif name == b"origin":
            origin = value
        if index >= max_headers:
            raise InvalidRequestError("The request carries too many headers")

    query = scope.get("query_string")
    if query and b"access_token" in query and _query_holds_token(query):
        raise InvalidRequestError("Access tokens are only accepted in the Authorization header")

    if authorization is None:
        return Credentials(None, None, form_body, origin)
    scheme, _, rest = authorization.partition(b" ")
    scheme_name = scheme.decode("latin-1").lower()  # B4: the scheme is case-insensitive
    if scheme_name != "bearer":
        return Credentials(scheme_name, None, form_body, origin)
    raw = rest.strip(b" ")
    if not raw or len(raw) > max_token_length or raw.translate(None, _B64TOKEN):
        raise InvalidTokenError("The access token is malformed")
    return Credentials(scheme_name, raw.decode("ascii"), form_body, origin)


def _query_holds_token(query: bytes) -> bool:
    pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True)
    return any(key == "access_token" for key, _ in pairs)


def form_holds_token(body: bytes) -> bool:
    """B1: a token in a form-encoded body (RFC 6750 §2.2) is refused, alone or with the header."""
    return _query_holds_token(body)
