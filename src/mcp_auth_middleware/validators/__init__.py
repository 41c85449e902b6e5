"""Token validators: local JWT, remote introspection, and JWT-first with a fallback."""

from .base import CachingValidator, RoutingValidator, TokenValidator, Validator, as_validator
from .cache import TokenCache, token_key
from .fallback import FallbackValidator
from .introspection import IntrospectionValidator
from .issuers import IssuerRouter, TenantIssuers
from .jwks import JWKSKeys, StaticKeys
from .jwt import JWTValidator

__all__ = [
    "CachingValidator",
    "FallbackValidator",
    "IntrospectionValidator",
    "IssuerRouter",
    "JWKSKeys",
    "JWTValidator",
    "RoutingValidator",
    "StaticKeys",
    "TenantIssuers",
    "TokenCache",
    "TokenValidator",
    "Validator",
    "as_validator",
    "token_key",
]
