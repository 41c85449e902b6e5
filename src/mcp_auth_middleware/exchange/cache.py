"""Exchanged tokens kept until shortly before they expire, and never past the caller's own
token: in memory (bounded, least recently used first out), and optionally in Redis or Valkey,
shared by replicas.

Keys are SHA-256 digests of the caller's token and the target, never a token. In the shared
store each value is encrypted (AES-GCM) with a key derived from the caller's token (HKDF): a
copy of the store holds nothing usable without the caller's token, which it never holds. The
shared store is a cache: when it is down, exchanges go on without it (a WARNING every 10 s).
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ..shared_storage import connect
from ..validators.cache import TokenCache
from .grants import ExchangedToken

__all__ = ["Entry", "ExchangeCache"]

logger = logging.getLogger("mcp_auth_middleware.exchange")

_PREFIX = "mcp-oauth-middleware:exchange:"
_KDF_INFO = b"mcp-oauth-middleware token exchange cache v1"


@dataclass(frozen=True)
class Entry:
    token: ExchangedToken
    until: float  # seconds since the epoch; after it the entry is not used


class ExchangeCache:
    def __init__(self, size: int = 10_000, storage: str | None = None) -> None:
        self._memory: TokenCache[Entry] = TokenCache(size)
        self._shared = _SharedStore(storage) if storage else None

    async def get(self, key: bytes, subject_token: str) -> Entry | None:
        """From memory, else from the shared store (then kept in memory too)."""
        entry = self._memory.get(key)
        if entry is None and self._shared is not None:
            entry = await self._shared.get(key, subject_token)
            if entry is not None:
                self._memory.put(key, entry, entry.until)
        return entry

    async def put(self, key: bytes, subject_token: str, entry: Entry) -> None:
        if entry.until <= time.time() or self._memory.maxsize <= 0:
            return
        self._memory.put(key, entry, entry.until)
        if self._shared is not None:
            await self._shared.put(key, subject_token, entry)

    async def drop(self, key: bytes) -> None:
        self._memory.discard(key)
        if self._shared is not None:
            await self._shared.drop(key)

    async def aclose(self) -> None:
        if self._shared is not None:
            await self._shared.aclose()


class _SharedStore:
    """Redis or Valkey, through their own asyncio clients (the `redis` or `valkey` extra)."""

    def __init__(self, uri: str) -> None:
        self._client, self._errors = connect(uri, "a shared exchange cache")
        self._warned_at = 0.0

    async def get(self, key: bytes, subject_token: str) -> Entry | None:
        try:
            sealed = await self._client.get(_PREFIX + key.hex())
        except self._errors as exc:
            self._warn(exc)
            return None
        if not sealed or len(sealed) < 13:
            return None
        try:
            plain = AESGCM(_sealing_key(subject_token)).decrypt(sealed[:12], sealed[12:], key)
            record = json.loads(plain)
            token = ExchangedToken(
                access_token=record["t"],
                token_type=record["y"],
                expires_at=record["e"],
                scopes=frozenset(record["s"]),
                issued_token_type=record["i"],
            )
            return Entry(token, float(record["u"]))
        except (InvalidTag, ValueError, KeyError, TypeError):
            return None  # not ours, or tampered with: as if absent

    async def put(self, key: bytes, subject_token: str, entry: Entry) -> None:
        token = entry.token
        record = {
            "t": token.access_token,
            "y": token.token_type,
            "e": token.expires_at,
            "s": sorted(token.scopes),
            "i": token.issued_token_type,
            "u": entry.until,
        }
        nonce = os.urandom(12)
        sealed = nonce + AESGCM(_sealing_key(subject_token)).encrypt(nonce, json.dumps(record).encode(), key)
        milliseconds = int((entry.until - time.time()) * 1000)
        if milliseconds <= 0:
            return
        try:
            await self._client.set(_PREFIX + key.hex(), sealed, px=milliseconds)
        except self._errors as exc:
            self._warn(exc)

    async def drop(self, key: bytes) -> None:
        try:
            await self._client.delete(_PREFIX + key.hex())
        except self._errors as exc:
            self._warn(exc)

    def _warn(self, exc: BaseException) -> None:
        now = time.monotonic()
        if now - self._warned_at >= 10:
            self._warned_at = now
            logger.warning("shared exchange cache unavailable, exchanging without it (%s)", type(exc).__name__)

    async def aclose(self) -> None:
        await self._client.aclose()


def _sealing_key(subject_token: str) -> bytes:
    """The AES key for one caller's entries: only whoever holds the caller's token can read them."""
    kdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_KDF_INFO)
    return kdf.derive(subject_token.encode())
