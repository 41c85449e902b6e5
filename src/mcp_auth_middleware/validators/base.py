"""The small protocol every validator satisfies, so users can plug their own."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from ..auth_info import AuthInfo

__all__ = [
    "BoundTokenValidator",
    "CachingValidator",
    "CheckableValidator",
    "CompositeValidator",
    "LocalValidator",
    "ResourceBound",
    "TokenValidator",
    "accepting_bound",
    "for_resource",
]


@runtime_checkable
class TokenValidator(Protocol):
    """`validate` returns the caller's AuthInfo or raises InvalidTokenError (401),
    InsufficientScopeError (403) or AuthorizationServerUnavailableError (503)."""

    async def validate(self, token: str) -> AuthInfo: ...


@runtime_checkable
class CachingValidator(Protocol):
    """A validator that remembers verified tokens by their `token_key` (SHA-256).

    The middleware hashes the token once and asks `cached`, so a repeated token costs no
    coroutine; only when that returns None does it call `validate_new` with the same key.
    """

    def cached(self, key: bytes) -> AuthInfo | None: ...

    async def validate_new(self, token: str, key: bytes) -> AuthInfo: ...


@runtime_checkable
class BoundTokenValidator(Protocol):
    """A validator that can also return sender-constrained tokens (`cnf`) instead of refusing
    them: for a middleware that checks their DPoP proofs (RFC 9449 §7). `self` keeps
    refusing them, so a validator used on its own never takes a bound token for a bearer one."""

    def accepting_bound(self) -> TokenValidator: ...


def accepting_bound(validator: TokenValidator) -> TokenValidator:
    """`validator` returning bound tokens (with `AuthInfo.dpop_jkt`), when it can."""
    return validator.accepting_bound() if isinstance(validator, BoundTokenValidator) else validator


@runtime_checkable
class CompositeValidator(Protocol):
    """A validator made of others (FallbackValidator): metrics count each part."""

    @property
    def parts(self) -> tuple[TokenValidator, ...]: ...


@runtime_checkable
class CheckableValidator(Protocol):
    """A validator that can check its configuration against the authorization server before
    any token arrives (at startup, and from the CLI): `check` raises ConfigurationError when
    the configuration cannot work, AuthorizationServerUnavailableError when the server could
    not be reached, and returns when all is well."""

    async def check(self) -> None: ...


@runtime_checkable
class LocalValidator(Protocol):
    """A validator that can tell whether checking a token costs a remote call.

    An address blocked for failed attempts still gets its tokens checked when that is local
    (a JWT against known keys), so a valid token is served; a token that needs the
    authorization server (introspection) is refused before any call.
    """

    def checks_locally(self, token: str) -> bool: ...


@runtime_checkable
class ResourceBound(Protocol):
    """A validator whose audience, when not configured, is the protected resource's own.

    `for_resource` returns a validator for that one resource and leaves `self` unchanged, so
    one validator object can serve several resources: the audience a request must carry
    belongs to the resource that receives it (MCP authorization, Token Audience Binding and
    Validation; RFC 8707 §2), and so does the cache of tokens verified for it.
    """

    def for_resource(self, resource: str) -> TokenValidator: ...


def for_resource(validator: TokenValidator, resource: str) -> TokenValidator:
    """`validator` as one protected resource uses it (unchanged if it is not ResourceBound)."""
    return validator.for_resource(resource) if isinstance(validator, ResourceBound) else validator
