"""MCP 2026-07-28 request headers checked against the body (Streamable HTTP transport, SEP-2243).

A client on 2026-07-28 repeats the JSON-RPC `method` in `Mcp-Method` and, for the methods that
name something, that name in `Mcp-Name` (the tool or prompt name, the resource URI), so that
a gateway can route and decide per tool without reading bodies. That is only safe if the
server refuses a request whose headers say one thing and whose body another: a mismatch, a
name header on a method that names nothing, or a value that does not decode is HTTP 400 with
the transport's JSON-RPC error -32020, before any scope decision. Header names compare
case-insensitively, values case-sensitively after trimming surrounding whitespace (RFC 9110
§5.5); a value may be wrapped as `=?base64?...?=` (UTF-8, canonical base64). Requests
without these headers (older protocol versions) are decided from the body alone.

Whoever decides from the headers alone (a gateway's service, which gets no body) may trust them
only when the server behind is bound to check them: when the request carries exactly one
`MCP-Protocol-Version`, of 2026-07-28 or later (`headers_are_checked`). On an older version the
server routes the request by its body and never looks at `Mcp-Method` (the MCP SDKs and FastMCP
do so), so a client could name one tool in the headers and call another in the body.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from typing import Any

from .challenge import RawResponse
from .errors import AuthError

__all__ = [
    "FIRST_CHECKED_VERSION",
    "HEADER_MISMATCH",
    "NAME_BEARING_METHODS",
    "HeaderMismatchError",
    "check_mcp_headers",
    "decode_header",
    "headers_are_checked",
]

#: The JSON-RPC error code of the Streamable HTTP transport for headers that disagree with the body.
HEADER_MISMATCH = -32020
#: The methods that name something, and the params member `Mcp-Name` repeats.
NAME_BEARING_METHODS: Mapping[str, str] = {"tools/call": "name", "prompts/get": "name", "resources/read": "uri"}

#: The first protocol version whose servers must refuse headers that disagree with the body.
FIRST_CHECKED_VERSION = "2026-07-28"
_SENTINEL = re.compile(r"=\?base64\?(.*)\?=")
_DATE_VERSION = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


class HeaderMismatchError(AuthError):
    """`Mcp-Method` or `Mcp-Name` disagrees with the body: 400 with JSON-RPC error -32020."""

    error = "header_mismatch"
    status = 400

    def __init__(self, message: str, request_id: Any = None) -> None:
        super().__init__(message, detail=message)
        self.request_id = request_id if isinstance(request_id, str | int) and not isinstance(request_id, bool) else None

    def response(self) -> RawResponse:
        body = {
            "jsonrpc": "2.0",
            "id": self.request_id,
            "error": {"code": HEADER_MISMATCH, "message": self.description},
        }
        headers = [(b"content-type", b"application/json"), (b"cache-control", b"no-store")]
        return 400, headers, json.dumps(body).encode()


def headers_are_checked(versions: list[bytes]) -> bool:
    """Whether a server must check `Mcp-Method`/`Mcp-Name` against the body of a request
    whose `MCP-Protocol-Version` headers are `versions`: exactly one, a date-shaped version of
    2026-07-28 or later. None (a server assumes 2025-03-26), two (servers read the first, or
    the last), an older one, or one not shaped as a date: not bound, so not to be trusted."""
    if len(versions) != 1:
        return False
    value = versions[0].strip(b" \t").decode("latin-1")
    return _DATE_VERSION.fullmatch(value) is not None and value >= FIRST_CHECKED_VERSION


def decode_header(raw: bytes) -> str | None:
    """A header value as its text: trimmed, the base64 form decoded; None if it cannot be."""
    try:
        value = raw.decode("ascii").strip(" \t")
    except UnicodeDecodeError:
        return None
    wrapped = _SENTINEL.fullmatch(value)
    if wrapped is None:
        return value
    payload = wrapped.group(1)
    try:
        decoded = base64.b64decode(payload, validate=True)
        if base64.b64encode(decoded).decode("ascii") != payload:  # canonical only
            return None
        return decoded.decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None


def check_mcp_headers(method_header: bytes | None, name_header: bytes | None, messages: list[Any] | None) -> None:
    """HeaderMismatchError unless the headers (when present) say what the body says."""
    if messages is None or len(messages) != 1 or not isinstance(messages[0], Mapping):
        raise HeaderMismatchError("Mcp-Method or Mcp-Name is set, but the body is not one JSON-RPC message")
    message = messages[0]
    request_id = message.get("id")
    method = message.get("method")
    if method_header is not None and decode_header(method_header) != method:
        raise HeaderMismatchError("The Mcp-Method header does not match the request body's method", request_id)
    name_key = NAME_BEARING_METHODS.get(method) if isinstance(method, str) else None
    if name_header is None:
        if name_key is not None:  # a method that names something: Mcp-Name goes with Mcp-Method
            raise HeaderMismatchError(f"The Mcp-Name header is missing for {method}", request_id)
        return
    if name_key is None:
        raise HeaderMismatchError("The Mcp-Name header is set, but the request's method names nothing", request_id)
    params = message.get("params")
    named = params.get(name_key) if isinstance(params, Mapping) else None
    decoded = decode_header(name_header)
    if decoded is None:
        raise HeaderMismatchError("The Mcp-Name header is not a valid value (a malformed base64 form)", request_id)
    if decoded != named:
        raise HeaderMismatchError(f"The Mcp-Name header does not match the request body's {name_key}", request_id)
