"""Validators that ask a remote party about each new token: RFC 7662 introspection, and a
provider's own endpoint (Google's tokeninfo). What they share lives here.

Every answer, positive or negative, is kept by async-lru, which also lets concurrent requests
with one token share one call (in a task of its own: a request that goes away does not cancel
it); errors are not kept. A positive answer is also `remember`ed in the verified-token cache the
middleware reads without a coroutine. An answer is never used past its own deadline (for a
positive one, at most the token's `exp`: RFC 7662 §4).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from async_lru import alru_cache

from ..auth_info import AuthInfo
from ..credentials import check_token_syntax
from ..errors import InvalidTokenError
from .base import CachingValidator

__all__ = ["Answer", "AskingValidator", "Denial", "TokenKey"]


@dataclass(frozen=True)
class Denial:
    """Why a token is refused; the InvalidTokenError is made from it per request (an exception
    kept in a cache would keep its traceback alive)."""

    description: str
    detail: str | None = None
    mismatch: bool = False
    guess: bool = False  # only "not valid" can be a guessed token

    def error(self) -> InvalidTokenError:
        return InvalidTokenError(self.description, detail=self.detail, mismatch=self.mismatch, guess=self.guess)


@dataclass(frozen=True)
class Answer:
    info: AuthInfo | None  # None: refused, see denial
    denial: Denial | None
    until: float  # time (since the epoch) after which the answer is not used


class TokenKey:
    """Cache key: equal and hashed by the token's SHA-256; the token itself is dropped from
    the key as soon as it has been asked about, so the cache holds no raw tokens."""

    __slots__ = ("digest", "token")

    def __init__(self, token: str, digest: bytes) -> None:
        self.token: str | None = token
        self.digest = digest

    def __hash__(self) -> int:
        return hash(self.digest)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TokenKey) and other.digest == self.digest


class AskingValidator(CachingValidator):
    """Subclasses set `cache_ttl`, `negative_cache_ttl` and `_results_size` before calling
    `CachingValidator.__init__`, and implement `answer(token)`."""

    cache_ttl: float
    negative_cache_ttl: float
    _results_size: int

    def _new_cache(self) -> None:
        """Besides the verified-token cache: the answers (async-lru), and counters read by
        tests and metrics: requests sent, failed, lookups; on_duration(seconds)."""
        super()._new_cache()
        self.calls = self.errors = self.lookups = 0
        self.on_duration: Callable[[float], object] | None = None
        self._answers = alru_cache(maxsize=self._results_size, ttl=max(self.cache_ttl, self.negative_cache_ttl))(
            self._ask_about
        )

    async def answer(self, token: str) -> Answer:
        """Ask about `token`: `accepted(...)` or `refused(...)`; raise when it cannot be asked."""
        raise NotImplementedError

    def accepted(self, info: AuthInfo, expires: float | None) -> Answer:
        """A positive answer, kept `cache_ttl` at most and never past the token's expiry."""
        now = time.time()
        return Answer(info, None, now + self.cache_ttl if expires is None else min(now + self.cache_ttl, expires))

    def refused(self, description: str, detail: str | None = None, **kind: bool) -> Answer:
        return Answer(None, Denial(description, detail, **kind), time.time() + self.negative_cache_ttl)

    @property
    def cache_hits(self) -> int:
        # Positive hits in the TokenCache, plus calls that async-lru answered (negative
        # answers, and waiters that shared another request's call).
        return self._cache.hits + self.lookups - self.cache_misses

    async def validate_new(self, token: str, key: bytes) -> AuthInfo:
        """Ask about a token the TokenCache does not hold (async-lru may still know it);
        `key` is its token_key."""
        check_token_syntax(token)
        self.lookups += 1
        if self.cache_ttl <= 0:
            result = await self._ask_about(TokenKey(token, key))
        else:
            result = await self._answers(TokenKey(token, key))
            if result.until <= time.time():  # past its own lifetime: ask again
                self._answers.cache_invalidate(TokenKey(token, key))
                result = await self._answers(TokenKey(token, key))
            if result.info is not None:
                self.remember(key, result.info, result.until)
        if result.info is None:
            assert result.denial is not None
            raise result.denial.error()
        return result.info

    async def _ask_about(self, key: TokenKey) -> Answer:
        self.cache_misses += 1
        token, key.token = key.token, None
        assert token is not None
        try:
            return await self.answer(token)
        finally:
            del token
