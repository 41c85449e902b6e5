"""JWT first; only tokens that are not JWTs are introspected."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from ..auth_info import AuthInfo
from .base import (
    CachingValidator,
    CheckableValidator,
    LocalValidator,
    TokenValidator,
    accepting_bound,
    for_resource,
)

__all__ = ["FallbackValidator", "looks_like_jwt"]


def looks_like_jwt(token: str) -> bool:
    """Three dot-separated parts with a JSON header ("eyJ" is base64url for '{"')."""
    return token.startswith("eyJ") and token.count(".") == 2


class FallbackValidator:
    """Validates JWTs locally and sends only opaque tokens to introspection.

    A JWT that fails (bad signature, expired, wrong audience) is rejected without asking the
    authorization server, so garbage JWTs cannot be turned into load on the IdP.
    """

    def __init__(self, jwt_validator: TokenValidator, introspection_validator: TokenValidator) -> None:
        self.jwt_validator = jwt_validator
        self.introspection_validator = introspection_validator
        both = (jwt_validator, introspection_validator)
        # Decided once: a runtime protocol check costs microseconds.
        self._lookups = tuple(v.cached for v in both if isinstance(v, CachingValidator))
        self._jwt_new, self._introspection_new = (_new_token_path(v) for v in both)

    @property
    def parts(self) -> tuple[TokenValidator, ...]:
        return self.jwt_validator, self.introspection_validator

    def accepting_bound(self) -> FallbackValidator:
        """Both validators returning sender-constrained tokens (see BoundTokenValidator)."""
        return FallbackValidator(accepting_bound(self.jwt_validator), accepting_bound(self.introspection_validator))

    def for_resource(self, resource: str) -> FallbackValidator:
        """Both validators bound to one protected resource (see ResourceBound); `self` is not changed."""
        return FallbackValidator(
            for_resource(self.jwt_validator, resource), for_resource(self.introspection_validator, resource)
        )

    async def check(self) -> None:
        for validator in (self.jwt_validator, self.introspection_validator):
            if isinstance(validator, CheckableValidator):
                await validator.check()

    def checks_locally(self, token: str) -> bool:
        validator = self.jwt_validator if looks_like_jwt(token) else self.introspection_validator
        return isinstance(validator, LocalValidator) and validator.checks_locally(token)

    def cached(self, key: bytes) -> AuthInfo | None:
        for lookup in self._lookups:
            if (info := lookup(key)) is not None:
                return info
        return None

    async def validate(self, token: str) -> AuthInfo:
        validator = self.jwt_validator if looks_like_jwt(token) else self.introspection_validator
        return await validator.validate(token)

    async def validate_new(self, token: str, key: bytes) -> AuthInfo:
        return await (self._jwt_new if looks_like_jwt(token) else self._introspection_new)(token, key)


def _new_token_path(validator: TokenValidator) -> Callable[[str, bytes], Awaitable[AuthInfo]]:
    if isinstance(validator, CachingValidator):
        return validator.validate_new

    async def validate_new(token: str, key: bytes) -> AuthInfo:
        return await validator.validate(token)

    return validate_new
