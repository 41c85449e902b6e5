"""The compact JWS serialization as every JWT here is read: access tokens (RFC 9068), DPoP
proofs (RFC 9449) and the `iss` peeked at to route a token to its issuer.

One reading for all three, so they cannot drift apart: three base64url segments (RFC 7515
§7.1), strict base64url without padding (RFC 7515 §2), and strict JSON, in which a repeated
member or a NaN/Infinity is an error, never a guess at which value wins (RFC 7515 §5.2,
RFC 8725 §3.4). joserfc's own parser does the same with more generality (JWE, RFC 7797) at
several times the cost; on the cold path that cost is most of the budget, so the segments are
split here and joserfc's algorithm models verify the signatures.
"""

from __future__ import annotations

import binascii
import json
from typing import Any, NoReturn

from joserfc.errors import JoseError

__all__ = ["KEY_IMPORT_ERRORS", "MalformedJOSE", "b64url", "compact_parts", "json_object", "peek_claims"]

#: What joserfc raises for key material it cannot read (a malformed JWK, PEM or parameter).
KEY_IMPORT_ERRORS: tuple[type[Exception], ...] = (JoseError, ValueError, TypeError, KeyError)

_TO_STANDARD_ALPHABET = bytes.maketrans(b"-_", b"+/")
_PADDING = (b"", b"===", b"==", b"=")
_PLUS, _SLASH, _EQUALS = b"+/="


class MalformedJOSE(ValueError):
    """Not a compact JWS, not base64url, or not a strict JSON object; callers answer it with
    their own error (401 `invalid_token`, 401 `invalid_dpop_proof`)."""


def b64url(segment: bytes) -> bytes:
    """Strict base64url (RFC 7515 §2): no padding, no character of the other alphabets.

    The standard decoder in strict mode refuses every other character once `-_` became
    `+/`; these three would pass it, and base64url has none of them. (Byte values: an int
    `in` bytes is a plain scan, a bytes one first tries to read it as an int.)
    """
    if _PLUS in segment or _SLASH in segment or _EQUALS in segment:
        raise MalformedJOSE("not base64url")
    try:
        return binascii.a2b_base64(
            segment.translate(_TO_STANDARD_ALPHABET) + _PADDING[len(segment) % 4], strict_mode=True
        )
    except binascii.Error as exc:
        raise MalformedJOSE("not base64url") from exc


def compact_parts(token: bytes, max_length: int) -> tuple[bytes, bytes, bytes, bytes]:
    """Header segment, signing input, payload segment and the decoded signature of a compact
    JWS (RFC 7515 §7.1); MalformedJOSE for anything else."""
    segments = token.split(b".")
    if len(segments) != 3 or len(token) > max_length:
        raise MalformedJOSE("not a compact JWS")
    header_segment, payload_segment, signature_segment = segments
    signature = b64url(signature_segment)
    signing_input = token[: len(token) - len(signature_segment) - 1]
    return header_segment, signing_input, payload_segment, signature


def _no_duplicate_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise MalformedJOSE("duplicate member in a JSON object")
    return result


def _no_constant(name: str) -> NoReturn:
    raise MalformedJOSE(f"{name} is not JSON")


_JSON = json.JSONDecoder(object_pairs_hook=_no_duplicate_members, parse_constant=_no_constant)


def json_object(segment: bytes) -> dict[str, Any]:
    """A base64url segment holding a JSON object: a JOSE header or a claims set."""
    try:
        text = b64url(segment).decode()
        # raw_decode skips decode()'s two whitespace scans; whitespace around the object (rare,
        # but valid JSON) or anything else takes the general path.
        value, end = _JSON.raw_decode(text) if text[:1] == "{" else (None, -1)
        if end != len(text):
            value = _JSON.decode(text)
    except MalformedJOSE:
        raise
    except (ValueError, TypeError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise MalformedJOSE("not a JSON object") from exc
    if not isinstance(value, dict):
        raise MalformedJOSE("not a JSON object")
    return value


def peek_claims(token: str) -> dict[str, Any] | None:
    """The claims of a compact JWS read without verifying anything, or None: only to decide
    which issuer's keys to try, never to trust."""
    segments = token.encode("ascii", "replace").split(b".")
    if len(segments) != 3:
        return None
    try:
        return json_object(segments[1])
    except MalformedJOSE:
        return None
