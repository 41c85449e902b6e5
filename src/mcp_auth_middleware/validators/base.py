"""What a validator is: the one-method protocol users implement, and the bases ours share.

- `TokenValidator`: any object with `async validate(token) -> AuthInfo`. That is all a user's
  own validator needs; the middleware wraps it (`as_validator`).
- `Validator`: the base of the built-in validators, with every default the request path
  relies on, so it asks a validator, never its type: no cache (`cached` -> None), a remote
  check (`checks_locally` -> False), the same validator for every resource and for bound
  tokens (`for_resource`, `accepting_bound` -> self), nothing to check at startup.
- `CachingValidator`: a validator with a verified-token cache of its own (JWT, introspection):
  the middleware hashes a token once and calls `cached(key)`, a plain dict lookup, and awaits
  `validate_new(token, key)` only on a miss. Its copies for a resource, or for bound tokens,
  get a cache of their own: a token verified for one resource is never a hit at another.
- `RoutingValidator`: a validator made of others (JWT-first fallback, several issuers), which
  sends each token to one part and looks a token up in every part's cache.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Self

from ..auth_info import AuthInfo, TokenValidator
from .cache import TokenCache, token_key
from .claims import canonical_audiences

__all__ = ["CachingValidator", "RoutingValidator", "TokenValidator", "Validator", "as_validator"]


class Validator:
    """The defaults of a validator (see the module docstring); subclasses implement `validate`."""

    #: For metrics: which validator a cache count belongs to.
    kind = "custom"

    async def validate(self, token: str) -> AuthInfo:
        raise NotImplementedError

    def cached(self, key: bytes) -> AuthInfo | None:
        """The AuthInfo of a token verified before, by its `token_key`; None by default."""
        return None

    async def validate_new(self, token: str, key: bytes) -> AuthInfo:
        """A token `cached` did not know; `key` is its token_key."""
        return await self.validate(token)

    def checks_locally(self, token: str) -> bool:
        """Whether checking `token` costs no remote call: an address blocked for failed
        attempts still gets such tokens checked (a valid JWT is served, a guess is not)."""
        return False

    def for_resource(self, resource: str) -> Validator:
        """This validator as one protected resource uses it (RFC 8707 §2); `self` unchanged."""
        return self

    def accepting_bound(self) -> Validator:
        """This validator returning sender-constrained tokens instead of refusing them, for a
        middleware that checks their DPoP proofs (RFC 9449 §7); `self` keeps refusing them."""
        return self

    async def check(self) -> None:
        """Check the configuration against the authorization server before any token arrives:
        ConfigurationError when it cannot work, AuthorizationServerUnavailableError when the
        server could not be reached."""

    @property
    def parts(self) -> tuple[Validator, ...]:
        """The validators this one is made of (for metrics); none by default."""
        return ()

    @property
    def issuers(self) -> tuple[str, ...]:
        """The issuers whose tokens this validator accepts, when it knows them: the default
        `authorization_servers` of the metadata (RFC 9728 §2)."""
        return tuple(issuer for part in self.parts for issuer in part.issuers)


class CachingValidator(Validator):
    """A validator with a verified-token cache (see the module docstring). Subclasses
    implement `validate_new`, which checks a token and `remember`s it."""

    #: The resource URIs a token must name in `aud`; None until bound to a resource.
    audience: frozenset[str] | None = None
    #: Whether sender-constrained tokens are returned (for DPoP) rather than refused.
    accept_bound = False

    def __init__(self, cache_size: int = 10_000) -> None:
        self._cache_size = cache_size
        self._new_cache()

    def _new_cache(self) -> None:
        """An empty cache, and counters of its own: for a new validator and for each copy."""
        self._cache: TokenCache[AuthInfo] = TokenCache(self._cache_size)
        # The middleware calls the cache's own `get`, no method in between.
        self.cached = self._cache.get  # type: ignore[method-assign]
        self.cache_misses = 0  # read by metrics, with cache_hits

    @property
    def cache_hits(self) -> int:
        return self._cache.hits

    def remember(self, key: bytes, info: AuthInfo, until: float) -> None:
        """Keep `info` for the token whose token_key is `key`, until `until` (epoch seconds)."""
        self._cache.put(key, info, until)

    async def validate(self, token: str) -> AuthInfo:
        key = token_key(token.encode())
        info = self._cache.get(key)
        return info if info is not None else await self.validate_new(token, key)

    def _copy(self) -> Self:
        copied = copy.copy(self)
        copied._new_cache()
        return copied

    def for_resource(self, resource: str) -> Self:
        """Bound to `resource` as its audience, unless one was configured (which then holds at
        every resource, cached or not). The copy shares everything but the cache."""
        if self.audience is not None:
            return self
        bound = self._copy()
        bound.audience = canonical_audiences(resource)
        return bound

    def accepting_bound(self) -> Self:
        bound = self._copy()
        bound.accept_bound = True
        return bound


class RoutingValidator(Validator):
    """A validator that sends each token to one of its parts (see the module docstring).
    Subclasses implement `route` and `rebuilt`."""

    def __init__(self, parts: tuple[Validator, ...]) -> None:
        self._parts = parts
        # Decided once: the parts with a cache, and their lookups, in order.
        self._lookups: list[Callable[[bytes], AuthInfo | None]] = [
            part.cached for part in parts if isinstance(part, CachingValidator)
        ]

    @property
    def parts(self) -> tuple[Validator, ...]:
        return self._parts

    def route(self, token: str) -> Validator:
        raise NotImplementedError

    def rebuilt(self, bind: Callable[[Validator], Validator]) -> Self:
        """The same routing over `bind(part)` for every part."""
        raise NotImplementedError

    def add_part(self, part: Validator) -> None:
        """A part that joins later (a tenant's issuer, on its first token)."""
        self._parts = (*self._parts, part)
        if isinstance(part, CachingValidator):
            self._lookups.append(part.cached)

    def cached(self, key: bytes) -> AuthInfo | None:
        for lookup in self._lookups:
            if (info := lookup(key)) is not None:
                return info
        return None

    async def validate(self, token: str) -> AuthInfo:
        return await self.route(token).validate(token)

    async def validate_new(self, token: str, key: bytes) -> AuthInfo:
        return await self.route(token).validate_new(token, key)

    def checks_locally(self, token: str) -> bool:
        return self.route(token).checks_locally(token)

    def for_resource(self, resource: str) -> Self:
        return self.rebuilt(lambda part: part.for_resource(resource))

    def accepting_bound(self) -> Self:
        return self.rebuilt(lambda part: part.accepting_bound())

    async def check(self) -> None:
        for part in self._parts:
            await part.check()


class _Plain(Validator):
    """A user's validator seen through the Validator defaults: `validate` is all it needs;
    any other member of Validator it has (the `cached`/`validate_new` pair of
    docs/configuration.md, `for_resource`, `check`, ...) is used instead of the default.
    Decided here, once; the request path never asks."""

    def __init__(self, inner: TokenValidator) -> None:
        self.inner = inner
        for name in ("validate_new", "checks_locally", "check"):
            if callable(member := getattr(inner, name, None)):
                setattr(self, name, member)
        if callable(cached := getattr(inner, "cached", None)) and callable(getattr(inner, "validate_new", None)):
            self.cached = cached  # type: ignore[method-assign]

    async def validate(self, token: str) -> AuthInfo:
        return await self.inner.validate(token)

    def for_resource(self, resource: str) -> Validator:
        bind = getattr(self.inner, "for_resource", None)
        return as_validator(bind(resource)) if callable(bind) else self

    def accepting_bound(self) -> Validator:
        bind = getattr(self.inner, "accepting_bound", None)
        return as_validator(bind()) if callable(bind) else self


def as_validator(validator: TokenValidator) -> Validator:
    """Any TokenValidator as a Validator: ours as they are, a user's with the defaults."""
    return validator if isinstance(validator, Validator) else _Plain(validator)
