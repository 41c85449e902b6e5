"""The authorization-server side: an RFC 7662 introspection endpoint, a local dev server, and an
enterprise identity provider for the ID-JAG flow in tests."""

from .enterprise import EnterpriseIdentityProvider
from .introspection import IntrospectionClient, IntrospectionEndpoint, hash_secret
from .local import LocalAuthorizationServer

__all__ = [
    "EnterpriseIdentityProvider",
    "IntrospectionClient",
    "IntrospectionEndpoint",
    "LocalAuthorizationServer",
    "hash_secret",
]
