"""Token validators: local JWT, remote introspection, and JWT-first with a fallback."""

from .base import ResourceBound, TokenValidator
from .jwks import JWKSKeys, StaticKeys
from .jwt import JWTValidator

__all__ = ["JWKSKeys", "JWTValidator", "ResourceBound", "StaticKeys", "TokenValidator"]
