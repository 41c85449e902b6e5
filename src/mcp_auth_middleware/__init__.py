"""Make any MCP server over HTTP an OAuth 2.1 resource server with one line."""

__version__ = "0.1.0"

from .auth_info import AuthInfo
from .caller import get_auth
from .config import AuthConfig, BrowserAccess, DPoP, Guard, Limits, ScopeRules, Validation
from .discovery import discover_authorization_server
from .errors import (
    AuthError,
    AuthorizationServerUnavailableError,
    ConfigurationError,
    InsufficientScopeError,
    InvalidRequestError,
    InvalidTokenError,
    TooManyFailuresError,
)
from .middleware import MCPAuthMiddleware
from .validators import (
    FallbackValidator,
    GoogleTokenInfo,
    IntrospectionValidator,
    IssuerRouter,
    JWKSKeys,
    JWTValidator,
    ProviderTokenValidator,
    StaticKeys,
    TenantIssuers,
    TokenCache,
    TokenValidator,
)

__all__ = [
    "AuthConfig",
    "AuthError",
    "AuthInfo",
    "AuthorizationServerUnavailableError",
    "BrowserAccess",
    "ConfigurationError",
    "DPoP",
    "FallbackValidator",
    "GoogleTokenInfo",
    "Guard",
    "InsufficientScopeError",
    "IntrospectionValidator",
    "InvalidRequestError",
    "InvalidTokenError",
    "IssuerRouter",
    "JWKSKeys",
    "JWTValidator",
    "Limits",
    "MCPAuthMiddleware",
    "ProviderTokenValidator",
    "ScopeRules",
    "StaticKeys",
    "TenantIssuers",
    "TokenCache",
    "TokenValidator",
    "TooManyFailuresError",
    "Validation",
    "__version__",
    "discover_authorization_server",
    "get_auth",
]
