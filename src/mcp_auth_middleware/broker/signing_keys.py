"""The broker's signing keys: shared by every replica through the records (the private halves
sealed), rotated on a schedule, published in the JWKS before they sign and after they stop.

A new key is published `ahead` before it signs (validators that cached the key set meet its
`kid` already listed) and stays published `behind` after it stopped signing (tokens it signed
stay valid until they expire). The middleware reads these keys in process (`keys_for`), with no
HTTP call; other resource servers read the JWKS (RFC 7517 §5)."""

from __future__ import annotations

import asyncio
import itertools
import secrets
import time
from typing import Any

from joserfc.jwk import ECKey, Key

from .sealing import Sealer, SealError
from .storage import Record, Records

__all__ = ["SigningKeys"]

_KEY = "broker:signing-keys"
_CONTEXT = "broker signing key"
ALGORITHM = "ES256"
_RELOAD_COOLDOWN = 5.0


class SigningKeys:
    """`await keys.signing_key()` to sign; `await keys.jwks()` to publish; a `KeySource` for the
    middleware's JWT validator (`keys_for`, `refetch`)."""

    def __init__(
        self,
        records: Records,
        sealer: Sealer,
        *,
        rotate_every: float = 7 * 86400,
        ahead: float = 3600,
        behind: float = 86400,
        reload_every: float = 300,
    ) -> None:
        if behind < 3600 or ahead < 0 or rotate_every <= ahead:
            raise ValueError("keys rotate less often than they are published ahead; retired keys stay an hour at least")
        self.records, self.sealer = records, sealer
        self.rotate_every, self.ahead, self.behind, self.reload_every = rotate_every, ahead, behind, reload_every
        self._entries: list[dict[str, Any]] = []  # newest first: {"kid", "created", "sealed"}
        self._private: dict[str, ECKey] = {}
        self._verifying: dict[str, Key] = {}
        self._loaded_at = float("-inf")
        self._reloaded_for_unknown = float("-inf")
        self._lock = asyncio.Lock()

    async def signing_key(self) -> ECKey:
        """The newest key published at least `ahead` ago (the first one at once: nobody cached a set)."""
        entries = await self._current()
        now = time.time()
        ready = [e for e in entries if e["created"] + self.ahead <= now] or entries[-1:]
        return self._private_key(ready[0])

    async def jwks(self) -> dict[str, Any]:
        return {"keys": [self._public(e) for e in await self._current()]}

    async def keys_for(self, kid: str | None, key_type: str) -> list[Key]:
        """The public keys (with `kid`, if given). An unknown `kid` may be another replica's new
        key: the records are read again, at most once per `_RELOAD_COOLDOWN` (a flood of made-up
        kids costs one read)."""
        if key_type != "EC":
            return []
        entries = await self._current()
        if kid is not None and all(e["kid"] != kid for e in entries):
            entries = await self._current(unknown_kid=True)
        return [self._verifying_key(e) for e in entries if kid is None or e["kid"] == kid]

    async def refetch(self, since: float) -> None:
        """A known `kid` whose signature failed: read the records again (rate-limited too)."""
        await self._current(unknown_kid=True)

    async def _current(self, *, unknown_kid: bool = False) -> list[dict[str, Any]]:
        now = time.time()
        if unknown_kid and time.monotonic() - self._reloaded_for_unknown < _RELOAD_COOLDOWN:
            unknown_kid = False
        if unknown_kid:
            self._reloaded_for_unknown = time.monotonic()
        fresh = now - self._loaded_at < self.reload_every
        if self._entries and fresh and not self._rotation_due(now) and not unknown_kid:
            return self._entries
        async with self._lock:
            stale = not self._entries or now - self._loaded_at >= self.reload_every
            if stale or unknown_kid or self._rotation_due(now):
                self._entries = await self.records.update(_KEY, self._rotated, 10 * 365 * 86400)
                self._loaded_at = time.time()
                kids = {e["kid"] for e in self._entries}  # keys retired from the set leave memory too
                self._private = {k: v for k, v in self._private.items() if k in kids}
                self._verifying = {k: v for k, v in self._verifying.items() if k in kids}
        return self._entries

    def _rotation_due(self, now: float) -> bool:
        return not self._entries or self._entries[0]["created"] + self.rotate_every <= now

    def _rotated(self, old: Record | None) -> tuple[Record | None, list[dict[str, Any]]]:
        """The key set with a new key when the newest is due (atomic: one replica adds it),
        without keys retired longer than `behind`."""
        now = time.time()
        # A key sealed with a secret no longer configured cannot sign or be published: dropped.
        entries: list[dict[str, Any]] = [e for e in (old["keys"] if old else []) if self._opens(e)]
        if not entries or entries[0]["created"] + self.rotate_every <= now:
            kid = secrets.token_urlsafe(8)
            key = ECKey.generate_key("P-256", parameters={"kid": kid}, private=True)
            sealed = self.sealer.seal(key.as_dict(private=True), f"{_CONTEXT} {kid}")
            entries.insert(0, {"kid": kid, "created": now, "sealed": sealed})
        # A key stops signing when its successor starts (created + ahead); kept `behind` longer.
        kept = [entries[0]] + [
            older for newer, older in itertools.pairwise(entries) if newer["created"] + self.ahead + self.behind > now
        ]
        return {"keys": kept}, kept

    def _opens(self, entry: dict[str, Any]) -> bool:
        try:
            self._private_key(entry)
        except SealError:
            return False
        return True

    def _private_key(self, entry: dict[str, Any]) -> ECKey:
        key = self._private.get(entry["kid"])
        if key is None:
            key = ECKey.import_key(self.sealer.open(entry["sealed"], f"{_CONTEXT} {entry['kid']}"))
            self._private[entry["kid"]] = key
        return key

    def _verifying_key(self, entry: dict[str, Any]) -> Key:
        """The public key, one object per kid: the validator keeps its prepared verifier per key."""
        key = self._verifying.get(entry["kid"])
        if key is None:
            key = self._verifying[entry["kid"]] = ECKey.import_key(self._public(entry))
        return key

    def _public(self, entry: dict[str, Any]) -> dict[str, Any]:
        public = self._private_key(entry).as_dict(private=False)
        return {**public, "kid": entry["kid"], "use": "sig", "alg": ALGORITHM}
