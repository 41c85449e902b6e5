"""The verified-token cache: why a repeated token costs a hash and a dict lookup."""

from __future__ import annotations

import hashlib
import math
import time
from collections import OrderedDict
from typing import Generic, TypeVar

__all__ = ["TokenCache", "token_key"]

V = TypeVar("V")


def token_key(token: bytes) -> bytes:
    """The cache key of a token: its SHA-256, so no cache ever holds a raw token."""
    return hashlib.sha256(token).digest()


class TokenCache(Generic[V]):
    """What is known of tokens (the AuthInfo of verified ones; exchanged tokens) by a digest
    key: a bounded LRU in which an entry is never returned past its deadline (the token's
    `exp`, or sooner)."""

    __slots__ = ("_entries", "hits", "maxsize")

    def __init__(self, maxsize: int = 10_000) -> None:
        self.maxsize = maxsize
        self._entries: OrderedDict[bytes, tuple[V, float]] = OrderedDict()
        self.hits = 0  # read by metrics; validators count their own misses (real work)

    def get(self, key: bytes) -> V | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[1] <= time.time():  # wall clock, like `exp`
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return entry[0]

    def put(self, key: bytes, info: V, until: float) -> None:
        """Remember `info` until `until` (seconds since the epoch)."""
        if self.maxsize <= 0:
            return
        # A float, as time.time() is: comparing an int `exp` with it takes a slower path on
        # every hit. An `exp` beyond any float never comes (the LRU bound still holds).
        try:
            deadline = float(until)
        except OverflowError:
            deadline = math.inf
        self._entries[key] = (info, deadline)
        if len(self._entries) > self.maxsize:
            self._entries.popitem(last=False)

    def discard(self, key: bytes) -> None:
        self._entries.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
