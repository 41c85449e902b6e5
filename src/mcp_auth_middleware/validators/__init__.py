"""Token validators: local JWT, remote introspection, JWT-first with a fallback, several
issuers, and tokens only their provider's own endpoint can check."""

from .base import CachingValidator, RoutingValidator, TokenValidator, Validator, as_validator
from .cache import TokenCache, token_key
from .fallback import FallbackValidator
from .introspection import IntrospectionValidator
from .issuers import IssuerRouter, TenantIssuers
from .jwks import JWKSKeys, StaticKeys
from .jwt import JWTValidator
from .provider_endpoint import GoogleTokenInfo, ProviderTokenValidator

__all__ = [
    "CachingValidator",
    "FallbackValidator",
    "GoogleTokenInfo",
    "IntrospectionValidator",
    "IssuerRouter",
    "JWKSKeys",
    "JWTValidator",
    "ProviderTokenValidator",
    "RoutingValidator",
    "StaticKeys",
    "TenantIssuers",
    "TokenCache",
    "TokenValidator",
    "Validator",
    "as_validator",
    "token_key",
]
