"""The authorization-server side: an RFC 7662 introspection endpoint and a local dev server."""

from .introspection import IntrospectionClient, IntrospectionEndpoint, hash_secret
from .local import LocalAuthorizationServer

__all__ = ["IntrospectionClient", "IntrospectionEndpoint", "LocalAuthorizationServer", "hash_secret"]
