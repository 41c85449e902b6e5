"""Reading the bearer token from a request (RFC 6750 §2.1), and refusing it anywhere but the
header (RFC 6750 §2.2, §2.3, §3.1; OAuth 2.1 §5.1)."""

from __future__ import annotations

from urllib.parse import parse_qsl

from .errors import InvalidTokenError

__all__ = [
    "CONFLICTING_ORIGINS",
    "MAX_HEADERS",
    "REPEATED_PROOFS",
    "Scanned",
    "bearer_token",
    "check_token_syntax",
    "dpop_token",
    "form_holds_token",
    "is_form",
    "query_holds_token",
    "scan_headers",
    "token_text",
]

_COMMON_BEARER = (b"Bearer ", b"bearer ")
_SPACE = ord(" ")  # an int `in` bytes is a plain scan; a bytes one first tries it as an int
#: More headers than this and the request is refused before any of them is looked at.
MAX_HEADERS = 200
_FORM = b"application/x-www-form-urlencoded"
_FORM_LENGTH = len(_FORM)
# RFC 6750 b64token characters (with "=" anywhere, as some opaque tokens have it).
_B64TOKEN = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/="


#: The request headers the request path reads (ASGI header names are lowercase).
_READ_HEADERS = frozenset({b"authorization", b"content-type", b"origin", b"dpop", b"mcp-method", b"mcp-name"})
#: Stands for two Origin headers: matches no allowed origin, so such a request is refused.
CONFLICTING_ORIGINS = b"\x00conflicting origins"
#: Stands for two DPoP headers: an invalid proof (RFC 9449 §4.3, §7.1).
REPEATED_PROOFS = b"\x00repeated proofs"
#: authorization, whether the body is a form, origin, dpop, what makes the request malformed
#: (or None), and the MCP 2026-07-28 headers Mcp-Method and Mcp-Name.
Scanned = tuple[bytes | None, bool, bytes | None, bytes | None, str | None, bytes | None, bytes | None]


def scan_headers(headers: list[tuple[bytes, bytes]]) -> Scanned:
    """One pass over the headers: the four the request path reads (of Content-Type, only
    whether the body is a form), and the problem a request with two of a singleton (or far
    too many headers) has, which makes it malformed (400)."""
    authorization = content_type = origin = proof = mcp_method = mcp_name = None
    problem = None
    if len(headers) > MAX_HEADERS:
        return None, False, None, None, "The request carries too many headers", None, None
    for name, value in headers:
        if name not in _READ_HEADERS:  # most headers: one set lookup, nothing else
            continue
        if name == b"authorization":
            if authorization is not None:
                problem = "The request carries more than one Authorization header"
            authorization = value
        elif name == b"content-type":
            # A singleton field (RFC 9110 §8.3): with two, we and the app could each read a
            # different one, and a form body would pass unchecked.
            if content_type is not None:
                problem = "The request carries more than one Content-Type header"
            content_type = value
        elif name == b"origin":
            # One Origin per request (RFC 6454 §7.3); two match no allowed origin.
            origin = value if origin is None else CONFLICTING_ORIGINS
        elif name == b"dpop":
            # RFC 9449 §4.3: not more than one DPoP header; two are an invalid proof.
            proof = value if proof is None else REPEATED_PROOFS
        elif name == b"mcp-method":
            if mcp_method is not None:
                problem = "The request carries more than one Mcp-Method header"
            mcp_method = value
        else:  # mcp-name
            if mcp_name is not None:
                problem = "The request carries more than one Mcp-Name header"
            mcp_name = value
    # A form body could hold a token (RFC 6750 §2.2, §3.1); most bodies are JSON, whose
    # content type is shorter than the form's.
    form = content_type is not None and len(content_type) >= _FORM_LENGTH and is_form(content_type)
    return authorization, form, origin, proof, problem, mcp_method, mcp_name


def bearer_token(authorization: bytes | None, max_length: int) -> bytes | None:
    """The token of a `Bearer` Authorization value; None without one (no header, another scheme).

    Only the checks a cached token needs; a new token gets the rest from `token_text`.
    Raises InvalidTokenError for a Bearer value that cannot be a token.
    """
    if authorization is None:
        return None
    # The usual spellings cost one copy (on 3.11 `[:7] in` is cheaper than `startswith`).
    if authorization[:7] in _COMMON_BEARER:
        token = authorization[7:]
    else:  # RFC 9110 §11.1: the scheme is case-insensitive
        scheme, _, token = authorization.partition(b" ")
        if scheme.lower() != b"bearer":
            return None
    if not 0 < len(token) <= max_length:
        raise InvalidTokenError("The access token is malformed")
    if token[0] == _SPACE or token[-1] == _SPACE:
        token = token.strip(b" ")
        if not token:
            raise InvalidTokenError("The access token is malformed")
    return token


def dpop_token(authorization: bytes | None, max_length: int) -> bytes | None:
    """The token of a `DPoP` Authorization value (RFC 9449 §7.1); None for any other scheme."""
    if authorization is None:
        return None
    scheme, _, token = authorization.partition(b" ")
    if scheme.lower() != b"dpop":
        return None
    token = token.strip(b" ")
    if not 0 < len(token) <= max_length:
        raise InvalidTokenError("The access token is malformed")
    return token


def token_text(token: bytes) -> str:
    """The token as the validators take it: ASCII without spaces, or InvalidTokenError."""
    if _SPACE in token or not token.isascii():
        raise InvalidTokenError("The access token is malformed")
    return token.decode("ascii")


def check_token_syntax(token: str) -> None:
    """RFC 6750 b64token characters only, for validators to call before any work."""
    if token.encode("ascii", "replace").translate(None, _B64TOKEN):
        raise InvalidTokenError("The access token is malformed")


def is_form(content_type: bytes) -> bool:
    """A form-encoded body, which could hold a token (RFC 6750 §2, §3.1)."""
    # Most bodies are JSON: "application/json" is shorter than the form type, no copy needed.
    return len(content_type) >= _FORM_LENGTH and content_type[:_FORM_LENGTH].lower() == _FORM


def query_holds_token(query: bytes) -> bool:
    """`access_token` in the query string (RFC 6750 §2.3) never authenticates (OAuth 2.1 §5.1)."""
    if query.find(b"access_token") < 0 and query.find(b"%") < 0:  # the key may be percent-encoded
        return False
    pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True)
    return any(key == "access_token" for key, _ in pairs)


def form_holds_token(body: bytes) -> bool:
    """A token in a form-encoded body (RFC 6750 §2.2) is refused, alone or with the header (§3.1)."""
    return query_holds_token(body)
