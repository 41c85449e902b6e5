"""Gateway mode: the middleware's checks as an authorization service for nginx `auth_request`,
Caddy `forward_auth`, Traefik `ForwardAuth` and Envoy `ext_authz` (docs/gateways.md)."""

from .identity import ASSERTION_TYPE, verify_assertion
from .options import DEFAULT_IDENTITY_HEADERS, GatewayKind, GatewayOptions, WithoutMcpHeaders
from .service import JWKS_PATH, GatewayService
from .upstream import CallerFromGateway

__all__ = [
    "ASSERTION_TYPE",
    "DEFAULT_IDENTITY_HEADERS",
    "JWKS_PATH",
    "CallerFromGateway",
    "GatewayKind",
    "GatewayOptions",
    "GatewayService",
    "WithoutMcpHeaders",
    "verify_assertion",
]
