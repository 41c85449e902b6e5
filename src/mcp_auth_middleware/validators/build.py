"""The validator the one-line form builds from its options (`Validation`): JWTs against the
issuer's keys, introspection, both, or one JWT validator per issuer, each found by discovery
(RFC 8414, then OpenID Connect) on the first request that needs it, so the app starts even
when the authorization server is down (requests get 503 until it answers)."""

from __future__ import annotations

from functools import partial

from ..config import Validation
from ..discovery import Discovery
from .base import Validator
from .fallback import FallbackValidator
from .introspection import IntrospectionValidator
from .issuers import IssuerRouter, discovered_jwt_validator
from .jwt import JWTValidator

__all__ = ["validator_for"]


def validator_for(options: Validation) -> Validator:
    """A validator from `options`, which its own construction has checked."""
    if options.issuers:
        return IssuerRouter(
            {issuer: discovered_jwt_validator(issuer, allow_http=options.allow_http) for issuer in options.issuers}
        )
    issuer = options.issuer
    assert issuer is not None  # Validation and AuthConfig refuse a configuration without one
    discovery = Discovery(issuer, allow_http=options.allow_http)
    jwt = JWTValidator(
        issuer=issuer,
        jwks_uri=options.jwks_uri,
        allow_http=options.allow_http,
        resolve_jwks_uri=None if options.jwks_uri else partial(discovery.endpoint, "jwks_uri"),
    )
    if options.token_validation == "jwt":
        return jwt
    assert options.client_id is not None and options.client_secret is not None
    introspection = IntrospectionValidator(
        options.introspection_endpoint,
        client_id=options.client_id,
        client_secret=options.client_secret,
        issuer=issuer,
        allow_http=options.allow_http,
        resolve_endpoint=None
        if options.introspection_endpoint
        else partial(discovery.endpoint, "introspection_endpoint"),
    )
    return introspection if options.token_validation == "introspection" else FallbackValidator(jwt, introspection)
