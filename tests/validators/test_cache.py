"""TokenCache: the verified-token cache both validators share (keyed by SHA-256, bounded, RFC 7662 §4)."""

from __future__ import annotations

import hashlib
import time

import pytest

from mcp_auth_middleware import AuthInfo
from mcp_auth_middleware.validators import TokenCache, token_key


def info(sub: str) -> AuthInfo:
    return AuthInfo(sub=sub, client_id="c", scopes=frozenset({"mcp"}))


def test_key_is_sha256_of_the_token_never_the_token() -> None:
    assert token_key(b"abc") == hashlib.sha256(b"abc").digest()
    cache = TokenCache()
    cache.put(token_key(b"secret-token"), info("a"), time.time() + 60)
    assert b"secret-token" not in repr(cache._entries).encode()


def test_hit_until_the_deadline_then_gone(monkeypatch: pytest.MonkeyPatch) -> None:
    cache = TokenCache()
    now = time.time()
    cache.put(b"k", info("a"), now + 10)
    assert cache.get(b"k") == info("a") and cache.hits == 1
    monkeypatch.setattr(time, "time", lambda: now + 10)  # at the deadline: no longer valid (RFC 7662 §4)
    assert cache.get(b"k") is None
    assert len(cache) == 0  # and dropped
    assert cache.hits == 1


def test_bounded_lru_evicts_the_least_recently_used() -> None:
    cache = TokenCache(maxsize=2)
    later = time.time() + 60
    cache.put(b"a", info("a"), later)
    cache.put(b"b", info("b"), later)
    assert cache.get(b"a") is not None  # a is now the most recently used
    cache.put(b"c", info("c"), later)
    assert len(cache) == 2
    assert cache.get(b"b") is None and cache.get(b"a") is not None and cache.get(b"c") is not None


def test_size_zero_caches_nothing_and_discard_and_clear_work() -> None:
    off = TokenCache(maxsize=0)
    off.put(b"a", info("a"), time.time() + 60)
    assert off.get(b"a") is None and len(off) == 0
    cache = TokenCache()
    cache.put(b"a", info("a"), time.time() + 60)
    cache.put(b"b", info("b"), time.time() + 60)
    cache.discard(b"a")
    cache.discard(b"missing")
    assert cache.get(b"a") is None and len(cache) == 1
    cache.clear()
    assert len(cache) == 0
