"""Where verification keys come from: static keys, or a JWKS endpoint with a careful cache.

The JWKS cache is hand-written rather than an async-lru TTL cache because its rules are not
"expire and refetch": keep the last good keys when a refresh fails (within `max_stale`),
refetch early on an unknown `kid` (or a known one whose signature no longer verifies) but at
most once per cooldown, back off after a failure, and share one in-flight fetch among all
waiting requests.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import re
import time
import warnings
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Protocol, runtime_checkable

import httpx2
from joserfc.jwk import ECKey, Key, KeySet, OKPKey, RSAKey

from ..errors import AuthError, AuthorizationServerUnavailableError, ConfigurationError
from ..fetch import NotJSONError, UnexpectedStatusError, check_fetch_url, describe_failure, fetch_limited, json_body
from ..jose import KEY_IMPORT_ERRORS

__all__ = ["JWKSKeys", "KeySource", "RefetchableKeySource", "StaticKeys", "import_keys"]

logger = logging.getLogger("mcp_auth_middleware.jwks")

_MAX_AGE = re.compile(r"max-age=(\d+)", re.IGNORECASE)
_ASYMMETRIC: dict[str, type[RSAKey] | type[ECKey] | type[OKPKey]] = {"RSA": RSAKey, "EC": ECKey, "OKP": OKPKey}
MIN_RSA_BITS = 2048


class KeySource(Protocol):
    """Where a JWTValidator finds the candidate keys for a token's `kid` and key type."""

    async def keys_for(self, kid: str | None, key_type: str) -> list[Key]: ...


@runtime_checkable
class RefetchableKeySource(KeySource, Protocol):
    """A key source that can look again: `refetch(since)` returns once keys fetched after
    `since` (a `time.monotonic()` reading) are in place, or the attempt failed."""

    async def refetch(self, since: float) -> None: ...


def _import_one(data: Mapping[str, Any]) -> Key | None:
    """One JWK, or None if it is not a usable signature-verification key."""
    if not isinstance(data, Mapping) or data.get("use", "sig") != "sig":
        return None
    key_class = _ASYMMETRIC.get(str(data.get("kty")))
    if key_class is None:
        return None  # unknown kty, or "oct": symmetric keys never verify our tokens
    try:
        with warnings.catch_warnings():  # joserfc warns on weak keys; we drop them below
            warnings.simplefilter("ignore")
            key: Key = key_class.import_key(dict(data))
    except KEY_IMPORT_ERRORS:
        return None
    if isinstance(key, RSAKey) and key.raw_value.key_size < MIN_RSA_BITS:
        return None
    return key


def import_keys(keys: Any) -> list[Key]:
    """A PEM string, a JWK dict, a JWKS dict, a joserfc Key/KeySet, or a list of these."""
    if isinstance(keys, KeySet):
        return [k for k in keys.keys if k.key_type in _ASYMMETRIC]
    if isinstance(keys, RSAKey | ECKey | OKPKey):
        return [keys]
    if isinstance(keys, str | bytes):
        text = keys.decode() if isinstance(keys, bytes) else keys
        if text.lstrip().startswith("{"):
            return import_keys(json.loads(text))
        for key_class in (RSAKey, ECKey, OKPKey):
            try:
                return import_keys(key_class.import_key(text))
            except KEY_IMPORT_ERRORS:
                continue
        raise ValueError("could not read the PEM key")
    if isinstance(keys, Mapping):
        if "keys" in keys:
            return [k for item in keys["keys"] if (k := _import_one(item)) is not None]
        key = _import_one(keys)
        if key is None:
            raise ValueError("the JWK is not an asymmetric signature key")
        return [key]
    if isinstance(keys, Iterable):
        return [k for item in keys for k in import_keys(item)]
    raise TypeError(f"unsupported key material: {type(keys).__name__}")


class _KeyIndex:
    """A key set indexed once by (kid, key type): a token's candidates are one dict lookup."""

    __slots__ = ("_by", "_without_kid", "keys", "kids")

    def __init__(self, keys: list[Key]) -> None:
        self.keys = keys
        self.kids = {key.kid for key in keys if key.kid}
        self._by: dict[tuple[str | None, str], list[Key]] = {}
        self._without_kid: dict[str, list[Key]] = {}
        for key in keys:
            self._by.setdefault((None, key.key_type), []).append(key)  # a token without kid
            if key.kid:
                self._by.setdefault((key.kid, key.key_type), []).append(key)
            else:
                self._without_kid.setdefault(key.key_type, []).append(key)

    def select(self, kid: str | None, key_type: str) -> list[Key]:
        return self._by.get((kid, key_type), [])

    def without_kid(self, key_type: str) -> list[Key]:
        return self._without_kid.get(key_type, [])


class StaticKeys:
    """Keys given in the configuration."""

    def __init__(self, keys: Any) -> None:
        self._index = _KeyIndex(import_keys(keys))
        if not self._index.keys:
            raise ValueError("no usable asymmetric signature key in `keys`")

    async def keys_for(self, kid: str | None, key_type: str) -> list[Key]:
        # A token whose kid we do not know may still be signed by a key configured without kid.
        return self._index.select(kid, key_type) or self._index.without_kid(key_type)


class JWKSKeys:
    """Keys from a `jwks_uri`, cached per `Cache-Control: max-age` within bounds."""

    def __init__(
        self,
        uri: str | None = None,
        *,
        resolve_uri: Callable[[], Awaitable[str]] | None = None,
        http_client: httpx2.AsyncClient | None = None,
        timeout: float = 5.0,
        default_ttl: float = 300.0,
        min_ttl: float = 60.0,
        max_ttl: float = 3600.0,
        refresh_cooldown: float = 5.0,
        retry_interval: float = 2.0,
        max_stale: float = 86400.0,
        max_bytes: int = 512 * 1024,
        allow_http: bool = False,
    ) -> None:
        if uri is None and resolve_uri is None:
            raise ValueError("JWKSKeys needs `uri` or `resolve_uri`")
        self._allow_http = allow_http
        self.uri = check_fetch_url(uri, allow_http=allow_http) if uri else None
        self._resolve_uri = resolve_uri
        self._client = http_client
        self._timeout = timeout
        self.default_ttl, self.min_ttl, self.max_ttl = default_ttl, min_ttl, max_ttl
        self.refresh_cooldown = refresh_cooldown
        self.retry_interval = retry_interval
        self.max_stale = max_stale
        self.max_bytes = max_bytes
        self._index = _KeyIndex([])
        self._fetched_at: float | None = None  # monotonic time of the last good fetch
        self._expires_at = 0.0
        self._last_attempt = float("-inf")
        self._last_failure = float("-inf")
        self._inflight: asyncio.Task[None] | None = None
        self._last_error: AuthError | None = None
        self.fetches = 0  # observable in tests and metrics

    async def keys_for(self, kid: str | None, key_type: str) -> list[Key]:
        now = time.monotonic()
        if now >= self._expires_at:
            await self._refresh_if_allowed(now, self.retry_interval)
        self._check_usable(time.monotonic())
        keys = self._index.select(kid, key_type)
        if not keys and kid is not None and kid not in self._index.kids:
            # Key rotation: a new kid gets keys fetched after it arrived before it is refused.
            await self.refetch(now)
            keys = self._index.select(kid, key_type)
        return keys

    async def refetch(self, since: float) -> None:
        """Return once a fetch that started at or after `since` has finished.

        Joins the fetch in flight, or starts one; inside the cooldown (or the retry interval
        after a failure) it first waits for it to pass. All callers share that one fetch: a
        flood of unknown kids or forged signatures is one fetch per cooldown, while a token
        signed with a newly rotated key waits at most the cooldown instead of being refused.
        """
        while self._last_attempt < since:
            if self._inflight is not None:
                await asyncio.shield(self._inflight)  # began before `since`: not enough
                continue
            now = time.monotonic()
            wait = max(self._last_attempt + self.refresh_cooldown, self._last_failure + self.retry_interval) - now
            if wait > 0:
                await asyncio.sleep(wait)
                continue
            self._last_attempt = now
            self._inflight = asyncio.ensure_future(self._refresh())
        if self._inflight is not None:
            # shield: one waiter being cancelled must not cancel the fetch the others wait on.
            await asyncio.shield(self._inflight)

    def _check_usable(self, now: float) -> None:
        if self._fetched_at is None:
            if self._last_error is not None:
                raise copy.copy(self._last_error)  # a fresh exception: no shared traceback
            raise AuthorizationServerUnavailableError("The authorization server keys are unavailable")
        if now - self._fetched_at > self.max_stale:
            raise AuthorizationServerUnavailableError("The authorization server keys are too old")

    async def _refresh_if_allowed(self, now: float, cooldown: float) -> None:
        if self._inflight is None:
            if now - self._last_attempt < cooldown or now - self._last_failure < self.retry_interval:
                return
            self._last_attempt = now
            self._inflight = asyncio.ensure_future(self._refresh())
        task = self._inflight
        # shield: one waiter being cancelled must not cancel the fetch the others wait on.
        await asyncio.shield(task)

    async def _refresh(self) -> None:
        try:
            keys, ttl = await self._fetch()
        except AuthError as exc:  # discovery of the jwks_uri failed; it says why
            self._failed(exc)
        except UnexpectedStatusError as exc:
            detail = f"the JWKS at {self.uri} answered {exc}"
            self._failed(_unavailable(detail) if exc.transient else ConfigurationError(detail))
        except NotJSONError as exc:
            self._failed(ConfigurationError(f"the JWKS is not a usable key set: {exc}"))
        except ValueError as exc:  # not a key set, too large
            self._failed(ConfigurationError(f"the JWKS at {self.uri} is not a usable key set: {_describe(exc)}"))
        except (OSError, httpx2.HTTPError, TimeoutError) as exc:  # unreachable, timed out, TLS
            detail = describe_failure(exc, self.uri or "")
            self._failed(_unavailable(f"the JWKS at {self.uri} could not be fetched: {detail}"))
        else:
            self._index = _KeyIndex(keys)
            now = time.monotonic()
            self._fetched_at = now
            self._expires_at = now + ttl
            logger.info("JWKS refreshed: %d usable keys, cached %.0fs", len(keys), ttl)
        finally:
            self._inflight = None

    def _failed(self, error: AuthError) -> None:
        self._last_failure = time.monotonic()
        self._last_error = error
        if self._fetched_at is not None:
            # Requests still pass with the cached keys: this line is the only sign of trouble.
            # Without keys, the requests' own 503 lines (and the startup check) say it.
            logger.warning("JWKS fetch failed (%s); keeping %d cached keys", error.detail, len(self._index.keys))

    async def _fetch(self) -> tuple[list[Key], float]:
        if self.uri is None:
            assert self._resolve_uri is not None
            self.uri = check_fetch_url(await self._resolve_uri(), allow_http=self._allow_http)
        if self._client is None:
            self._client = httpx2.AsyncClient(timeout=self._timeout, follow_redirects=False)
        self.fetches += 1
        async with asyncio.timeout(self._timeout):
            body, headers = await fetch_limited(self._client, "GET", self.uri, self.max_bytes)
        document = json_body(body, headers, self.uri)
        if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
            raise ValueError("not a JWKS document")
        keys = import_keys({"keys": document["keys"]})
        if not keys:
            found = "; ".join(
                " ".join(f"{m} {item.get(m)}" for m in ("kty", "use", "alg") if isinstance(item, dict) and m in item)
                for item in document["keys"][:5]
            )
            raise ValueError(
                f"none of its {len(document['keys'])} keys is a public signature key we accept "
                f"(RSA of 2048 bits or more, EC, OKP; use sig){': ' + found if found else ''}"
            )
        return keys, self._ttl(headers.get("cache-control", ""))

    def _ttl(self, cache_control: str) -> float:
        match = _MAX_AGE.search(cache_control)
        ttl = float(match.group(1)) if match else self.default_ttl
        return min(max(ttl, self.min_ttl), self.max_ttl)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()


def _unavailable(detail: str) -> AuthorizationServerUnavailableError:
    return AuthorizationServerUnavailableError("The authorization server keys are unavailable", detail=detail)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:200] if str(exc) else type(exc).__name__
