"""JWT first; only tokens that are not JWTs are introspected."""

from __future__ import annotations

from collections.abc import Callable

from .base import RoutingValidator, TokenValidator, Validator, as_validator

__all__ = ["FallbackValidator", "looks_like_jwt"]


def looks_like_jwt(token: str) -> bool:
    """Three dot-separated parts with a JSON header ("eyJ" is base64url for '{"')."""
    return token.startswith("eyJ") and token.count(".") == 2


class FallbackValidator(RoutingValidator):
    """Validates JWTs locally and sends only opaque tokens to introspection.

    A JWT that fails (bad signature, expired, wrong audience) is rejected without asking the
    authorization server, so garbage JWTs cannot be turned into load on the IdP.
    """

    def __init__(self, jwt_validator: TokenValidator, introspection_validator: TokenValidator) -> None:
        self.jwt_validator = as_validator(jwt_validator)
        self.introspection_validator = as_validator(introspection_validator)
        super().__init__((self.jwt_validator, self.introspection_validator))

    def route(self, token: str) -> Validator:
        return self.jwt_validator if looks_like_jwt(token) else self.introspection_validator

    def rebuilt(self, bind: Callable[[Validator], Validator]) -> FallbackValidator:
        return FallbackValidator(bind(self.jwt_validator), bind(self.introspection_validator))
