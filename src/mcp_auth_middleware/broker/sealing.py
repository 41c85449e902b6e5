"""Values sealed for storage: a compact JWE (RFC 7516) with `dir` and A256GCM, so a stored
provider token is unreadable and tamper-evident without the secret. Secrets rotate: the first
seals, every one listed opens (the JWE `kid` says which), so a new secret goes first and an old
one is dropped once what it sealed has expired. A sealed value is bound to its place (`context`,
say the record's key, in the protected header): moved to another record, it does not open."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from joserfc import jwe
from joserfc.errors import JoseError
from joserfc.jwk import OctKey
from joserfc.registry import HeaderParameter

from ..jose import json_object

__all__ = ["MIN_SECRET_LENGTH", "SealError", "Sealer"]

#: A secret shorter than this is refused: `python -c 'import secrets; print(secrets.token_urlsafe(32))'`.
MIN_SECRET_LENGTH = 32
_HEADER_CONTEXT = "ctx"  # a hash of the context, never the context itself
#: dir with A256GCM only, and the context header known (any other header is refused).
_REGISTRY = jwe.JWERegistry(
    header_registry={_HEADER_CONTEXT: HeaderParameter("the sealed value's place", "str", required=True)},
    algorithms=["dir", "A256GCM"],
)


class SealError(ValueError):
    """A sealed value that does not open: another secret, altered, or from another place."""


class Sealer:
    """`Sealer(["new secret", "old secret"])`: `seal(value, context)` and `open(sealed, context)`."""

    def __init__(self, secrets: Sequence[str]) -> None:
        if isinstance(secrets, str) or not secrets:
            raise ValueError("the sealing secrets are a list, newest first, of at least one secret")
        self._keys: dict[str, OctKey] = {}
        for secret in secrets:
            if len(secret) < MIN_SECRET_LENGTH:
                raise ValueError(
                    f"a sealing secret has at least {MIN_SECRET_LENGTH} characters: "
                    "python -c 'import secrets; print(secrets.token_urlsafe(32))'"
                )
            key = HKDF(hashes.SHA256(), 32, salt=None, info=b"mcp-oauth-middleware sealing").derive(secret.encode())
            self._keys[hashlib.sha256(key).hexdigest()[:16]] = OctKey.import_key(key)
        self._sealing_kid = next(iter(self._keys))

    def seal(self, value: Any, context: str) -> str:
        """`value` (anything JSON holds) sealed with the newest secret, bound to `context`."""
        header = {"alg": "dir", "enc": "A256GCM", "kid": self._sealing_kid, _HEADER_CONTEXT: _hash(context)}
        payload = json.dumps(value, separators=(",", ":")).encode()
        return jwe.encrypt_compact(header, payload, self._keys[self._sealing_kid], registry=_REGISTRY)

    def open(self, sealed: str, context: str) -> Any:
        """The value `seal(value, context)` sealed, or SealError."""
        try:
            header = _header(sealed)
            key = self._keys[header["kid"]]
        except (ValueError, KeyError, TypeError):
            raise SealError("sealed with a secret that is not configured (or not a sealed value)") from None
        if header.get(_HEADER_CONTEXT) != _hash(context):
            raise SealError("sealed for another place")
        try:
            return json.loads(jwe.decrypt_compact(sealed, key, registry=_REGISTRY).plaintext or b"")
        except (JoseError, ValueError):
            raise SealError("altered, or not sealed by this secret") from None

    def needs_resealing(self, sealed: str) -> bool:
        """Whether `sealed` was sealed by an older secret (reseal it while the old one is listed)."""
        try:
            return bool(_header(sealed).get("kid") != self._sealing_kid)
        except ValueError:
            return True


def _hash(context: str) -> str:
    return hashlib.sha256(context.encode()).hexdigest()[:32]


def _header(sealed: str) -> dict[str, Any]:
    """The JWE's protected header (read strictly; MalformedJOSE is a ValueError)."""
    return json_object(sealed.split(".", 1)[0].encode("ascii", "replace"))
