"""Each assertion used once: a `jti` remembered while an assertion carrying it could still be
valid, in memory or, for several replicas, in Redis/Valkey (`limits`' storage, as the guard and
the DPoP replay check share theirs). Used for ID-JAGs (the jwt-bearer grant) and for client
assertions (`private_key_jwt`, RFC 7523 §3 item 7)."""

from __future__ import annotations

from limits import parse
from limits.storage import storage_from_string
from limits.strategies import FixedWindowRateLimiter

__all__ = ["MAX_ASSERTION_LIFETIME", "Replays"]

#: The longest an assertion may still be valid when it arrives (`exp` at most this far ahead):
#: its `jti` is remembered that long (and the leeway).
MAX_ASSERTION_LIFETIME = 600
_LEEWAY = 60


class Replays:
    """`first_use(kind, issuer, jti)`: True once, False for a replay within the window."""

    def __init__(self, storage_uri: str = "memory://") -> None:
        uri = storage_uri.removeprefix("async+")
        try:
            storage = storage_from_string(uri)
        except Exception as exc:  # limits' ConfigurationError: a missing client, a bad URI
            raise ValueError(f"replay storage {uri!r}: {exc}") from None
        self._limiter = FixedWindowRateLimiter(storage)
        self._once = parse(f"1/{MAX_ASSERTION_LIFETIME + _LEEWAY} seconds")

    def first_use(self, kind: str, issuer: str, jti: str) -> bool:
        return bool(self._limiter.hit(self._once, kind, issuer, jti))
