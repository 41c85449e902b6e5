"""`AuthConfig`: every option of the middleware, read, checked and given its default once.

The middleware takes either keyword options (`MCPAuthMiddleware(app, resource=..., ...)`),
which build an `AuthConfig`, or an `AuthConfig` itself; `AuthConfig.from_env()` reads the
`MCP_AUTH_*` variables. Values arrive as users write them (one space-separated string or a
list) and are kept in one typed form; whatever cannot work is refused here, at construction,
with a `ValueError` that says why, instead of on the first request.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from functools import partial
from types import MappingProxyType
from typing import Any, Literal

from .challenge import check_scope_token
from .discovery import Discovery
from .dpop import DEFAULT_DPOP_ALGORITHMS
from .policy import Rule
from .rate_limit import FORWARDED_HEADERS, ForwardedHeader
from .validators.base import TokenValidator
from .validators.fallback import FallbackValidator
from .validators.introspection import IntrospectionValidator
from .validators.issuers import IssuerRouter, discovered_jwt_validator
from .validators.jwt import JWTValidator
from .values import check_server_url, flag, word_list

__all__ = ["AuthConfig", "TokenValidation"]

TokenValidation = Literal["jwt", "introspection", "both"]
Scopes = str | Iterable[str]


def _scopes_by_name(mapping: Mapping[str, Scopes] | None) -> Mapping[str, tuple[str, ...]]:
    return MappingProxyType({name: tuple(word_list(scopes)) for name, scopes in (mapping or {}).items()})


class AuthConfig:
    """The configuration of one protected resource; immutable once built.

    Every keyword is documented in docs/configuration.md.
    """

    __slots__ = (
        "allow_http",
        "allowed_origins",
        "authorization_servers",
        "challenge_granted_scopes",
        "cors_origins",
        "dpop",
        "dpop_algorithms",
        "dpop_max_age",
        "dpop_nonce_secret",
        "dpop_nonces",
        "dpop_required",
        "expose_token",
        "failure_limit",
        "forwarded_header",
        "implied_scopes",
        "issuer",
        "log_allowed",
        "max_body",
        "max_form_body",
        "max_token_length",
        "meter_provider",
        "method_scopes",
        "prefix_implies",
        "prompt_scopes",
        "public_paths",
        "rate_limit_storage",
        "realm",
        "required_scopes",
        "resource",
        "resource_documentation",
        "resource_name",
        "resource_scopes",
        "scope_rule",
        "scopes_supported",
        "strict_startup",
        "tool_scopes",
        "trusted_proxies",
        "validator",
    )

    resource: str
    authorization_servers: tuple[str, ...]
    issuer: str | None
    validator: TokenValidator
    required_scopes: frozenset[str]
    scopes_supported: tuple[str, ...] | None
    public_paths: tuple[str, ...]
    cors_origins: tuple[str, ...] | None
    allowed_origins: tuple[str, ...]
    resource_name: str | None
    resource_documentation: str | None
    expose_token: bool
    log_allowed: bool
    max_token_length: int
    max_form_body: int
    max_body: int
    allow_http: bool
    realm: str | None
    tool_scopes: Mapping[str, tuple[str, ...]]
    method_scopes: Mapping[str, tuple[str, ...]]
    resource_scopes: Mapping[str, tuple[str, ...]]
    prompt_scopes: Mapping[str, tuple[str, ...]]
    implied_scopes: Mapping[str, tuple[str, ...]]
    scope_rule: Rule | None
    prefix_implies: bool
    challenge_granted_scopes: bool
    failure_limit: str | None
    rate_limit_storage: str
    trusted_proxies: tuple[str, ...]
    forwarded_header: ForwardedHeader
    strict_startup: bool
    meter_provider: Any
    dpop: bool
    dpop_required: bool
    dpop_algorithms: tuple[str, ...]
    dpop_max_age: int
    dpop_nonces: bool
    dpop_nonce_secret: str | None

    def __init__(
        self,
        *,
        resource: str | None = None,
        authorization_servers: Scopes | None = None,
        issuer: str | None = None,
        issuers: Scopes | None = None,
        validator: TokenValidator | None = None,
        required_scopes: Scopes = (),
        scopes_supported: Scopes | None = None,
        token_validation: TokenValidation = "jwt",
        jwks_uri: str | None = None,
        introspection_endpoint: str | None = None,
        client_id: str | None = None,
        client_secret: str | None = None,
        public_paths: Scopes = (),
        cors_origins: Scopes | None = ("*",),
        allowed_origins: Scopes | None = None,
        resource_name: str | None = None,
        resource_documentation: str | None = None,
        expose_token: bool = False,
        log_allowed: bool = False,
        max_token_length: int = 16 * 1024,
        max_form_body: int = 64 * 1024,
        allow_http: bool = False,
        realm: str | None = None,
        tool_scopes: Mapping[str, Scopes] | None = None,
        method_scopes: Mapping[str, Scopes] | None = None,
        resource_scopes: Mapping[str, Scopes] | None = None,
        prompt_scopes: Mapping[str, Scopes] | None = None,
        scope_rule: Rule | None = None,
        implied_scopes: Mapping[str, Scopes] | None = None,
        prefix_implies: bool = False,
        challenge_granted_scopes: bool = False,
        max_body: int = 1024 * 1024,
        failure_limit: str | None = "60/minute",
        rate_limit_storage: str = "memory://",
        trusted_proxies: Scopes = (),
        forwarded_header: ForwardedHeader = "x-forwarded-for",
        strict_startup: bool = False,
        meter_provider: Any = None,
        dpop: bool = False,
        dpop_required: bool = False,
        dpop_algorithms: Scopes = DEFAULT_DPOP_ALGORITHMS,
        dpop_max_age: int = 300,
        dpop_nonces: bool = False,
        dpop_nonce_secret: str | None = None,
    ) -> None:
        if resource is None:
            raise ValueError(
                "`resource` is required: the URL clients use for this MCP server, "
                'e.g. resource="https://mcp.example.com/mcp" (MCP_AUTH_RESOURCE)'
            )
        resource = check_server_url("resource", resource, allow_http=allow_http)
        if issuer is not None:
            issuer = check_server_url("issuer", issuer, allow_http=allow_http)
        several = tuple(check_server_url("issuer", i, allow_http=allow_http) for i in word_list(issuers))
        if several:
            if issuer is not None or validator is not None or token_validation != "jwt":
                raise ValueError(
                    "`issuers` discovers one JWTValidator per issuer: not with issuer=, validator= or introspection"
                )
            validator = IssuerRouter({i: discovered_jwt_validator(i, allow_http=allow_http) for i in several})
        routed = tuple(validator.issuers) if isinstance(validator, IssuerRouter) else ()
        servers = tuple(word_list(authorization_servers)) or ((issuer,) if issuer else routed)
        for server in servers:
            check_server_url("authorization server", server, allow_http=allow_http)
        if forwarded_header not in FORWARDED_HEADERS:
            raise ValueError(f"forwarded_header must be one of {FORWARDED_HEADERS}, not {forwarded_header!r}")
        for name, limit in (
            ("max_token_length", max_token_length),
            ("max_form_body", max_form_body),
            ("max_body", max_body),
        ):
            if not isinstance(limit, int) or limit <= 0:
                raise ValueError(f"{name} must be a positive number of bytes, not {limit!r}")
        values: dict[str, Any] = {
            "resource": resource,
            "authorization_servers": servers,
            "issuer": issuer,
            "validator": validator
            or _validator_for(
                issuer or (servers[0] if servers else None),
                token_validation,
                jwks_uri=jwks_uri,
                introspection_endpoint=introspection_endpoint,
                client_id=client_id,
                client_secret=client_secret,
                allow_http=allow_http,
            ),
            "required_scopes": frozenset(check_scope_token(s) for s in word_list(required_scopes)),
            "scopes_supported": None if scopes_supported is None else tuple(word_list(scopes_supported)),
            "public_paths": tuple(word_list(public_paths)),
            "cors_origins": None if cors_origins is None else tuple(word_list(cors_origins)),
            "allowed_origins": tuple(word_list(allowed_origins)),
            "resource_name": resource_name,
            "resource_documentation": resource_documentation,
            "expose_token": expose_token,
            "log_allowed": log_allowed,
            "max_token_length": max_token_length,
            "max_form_body": max_form_body,
            "max_body": max_body,
            "allow_http": allow_http,
            "realm": realm,
            "tool_scopes": _scopes_by_name(tool_scopes),
            "method_scopes": _scopes_by_name(method_scopes),
            "resource_scopes": _scopes_by_name(resource_scopes),
            "prompt_scopes": _scopes_by_name(prompt_scopes),
            "implied_scopes": _scopes_by_name(implied_scopes),
            "scope_rule": scope_rule,
            "prefix_implies": prefix_implies,
            "challenge_granted_scopes": challenge_granted_scopes,
            "failure_limit": failure_limit,
            "rate_limit_storage": rate_limit_storage,
            "trusted_proxies": tuple(word_list(trusted_proxies)),
            "forwarded_header": forwarded_header,
            "strict_startup": strict_startup,
            "meter_provider": meter_provider,
            # RFC 9449: DPoP-bound tokens with their proofs; required: bearer tokens refused.
            "dpop": dpop or dpop_required,
            "dpop_required": dpop_required,
            "dpop_algorithms": tuple(word_list(dpop_algorithms)),
            "dpop_max_age": dpop_max_age,
            "dpop_nonces": dpop_nonces,
            "dpop_nonce_secret": dpop_nonce_secret,
        }
        for name, value in values.items():
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"AuthConfig is immutable: build a new one instead of setting {name}")

    def __repr__(self) -> str:
        return f"AuthConfig(resource={self.resource!r}, authorization_servers={list(self.authorization_servers)!r})"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> AuthConfig:
        """The configuration the `MCP_AUTH_*` variables describe; keywords override them."""
        env = os.environ if environ is None else environ

        def listed(name: str) -> list[str] | None:
            value = env.get(name)
            return word_list(value) if value is not None else None

        options: dict[str, Any] = {
            "resource": env.get("MCP_AUTH_RESOURCE"),
            "issuer": env.get("MCP_AUTH_ISSUER"),
            "issuers": listed("MCP_AUTH_ISSUERS"),
            "authorization_servers": listed("MCP_AUTH_AUTHORIZATION_SERVERS"),
            "jwks_uri": env.get("MCP_AUTH_JWKS_URI"),
            "introspection_endpoint": env.get("MCP_AUTH_INTROSPECTION_ENDPOINT"),
            "client_id": env.get("MCP_AUTH_CLIENT_ID"),
            "client_secret": env.get("MCP_AUTH_CLIENT_SECRET"),
            "required_scopes": listed("MCP_AUTH_REQUIRED_SCOPES"),
            "scopes_supported": listed("MCP_AUTH_SCOPES_SUPPORTED"),
            "public_paths": listed("MCP_AUTH_PUBLIC_PATHS"),
            "token_validation": env.get("MCP_AUTH_TOKEN_VALIDATION"),
            "resource_name": env.get("MCP_AUTH_RESOURCE_NAME"),
            "rate_limit_storage": env.get("MCP_AUTH_RATE_LIMIT_STORAGE"),
            "trusted_proxies": listed("MCP_AUTH_TRUSTED_PROXIES"),
            "forwarded_header": env.get("MCP_AUTH_FORWARDED_HEADER"),
            "log_allowed": flag("MCP_AUTH_LOG_ALLOWED", env.get("MCP_AUTH_LOG_ALLOWED")),
            "allowed_origins": listed("MCP_AUTH_ALLOWED_ORIGINS"),
            "allow_http": flag("MCP_AUTH_ALLOW_HTTP", env.get("MCP_AUTH_ALLOW_HTTP")),
            "strict_startup": flag("MCP_AUTH_STRICT_STARTUP", env.get("MCP_AUTH_STRICT_STARTUP")),
            "dpop": flag("MCP_AUTH_DPOP", env.get("MCP_AUTH_DPOP")),
            "dpop_required": flag("MCP_AUTH_DPOP_REQUIRED", env.get("MCP_AUTH_DPOP_REQUIRED")),
            "dpop_nonces": flag("MCP_AUTH_DPOP_NONCES", env.get("MCP_AUTH_DPOP_NONCES")),
            "dpop_nonce_secret": env.get("MCP_AUTH_DPOP_NONCE_SECRET"),
        }
        options = {k: v for k, v in options.items() if v is not None}
        if "MCP_AUTH_CORS_ORIGINS" in env:  # empty turns CORS off
            options["cors_origins"] = listed("MCP_AUTH_CORS_ORIGINS") or None
        if "MCP_AUTH_FAILURE_LIMIT" in env:  # empty or "off" turns the guard off
            limit = env["MCP_AUTH_FAILURE_LIMIT"].strip()
            options["failure_limit"] = None if limit in ("", "off") else limit
        options |= overrides
        if "resource" not in options:
            raise ValueError("MCP_AUTH_RESOURCE is required")
        return cls(**options)


def _validator_for(
    issuer: str | None,
    token_validation: str,
    *,
    jwks_uri: str | None,
    introspection_endpoint: str | None,
    client_id: str | None,
    client_secret: str | None,
    allow_http: bool,
) -> TokenValidator:
    """The one-line form: validators built from the issuer's metadata, discovered lazily on the
    first request that needs it (the app starts even if the AS is down; requests get 503)."""
    if issuer is None:
        raise ValueError("pass `validator=`, or `issuer=` to discover the authorization server")
    if token_validation not in ("jwt", "introspection", "both"):
        raise ValueError(f"token_validation must be 'jwt', 'introspection' or 'both', not {token_validation!r}")
    discovery = Discovery(issuer, allow_http=allow_http)
    jwt = JWTValidator(
        issuer=issuer,
        jwks_uri=jwks_uri,
        allow_http=allow_http,
        resolve_jwks_uri=None if jwks_uri else partial(discovery.endpoint, "jwks_uri"),
    )
    if token_validation == "jwt":
        return jwt
    if not client_id or not client_secret:
        raise ValueError("token introspection needs `client_id` and `client_secret`")
    introspection = IntrospectionValidator(
        introspection_endpoint,
        client_id=client_id,
        client_secret=client_secret,
        issuer=issuer,
        allow_http=allow_http,
        resolve_endpoint=None if introspection_endpoint else partial(discovery.endpoint, "introspection_endpoint"),
    )
    return introspection if token_validation == "introspection" else FallbackValidator(jwt, introspection)
