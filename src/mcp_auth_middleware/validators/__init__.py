"""Token validators: local JWT, remote introspection, and JWT-first with a fallback."""

from .base import ResourceBound, TokenValidator
from .fallback import FallbackValidator
from .introspection import IntrospectionValidator
from .jwks import JWKSKeys, StaticKeys
from .jwt import JWTValidator

__all__ = [
    "FallbackValidator",
    "IntrospectionValidator",
    "JWKSKeys",
    "JWTValidator",
    "ResourceBound",
    "StaticKeys",
    "TokenValidator",
]
