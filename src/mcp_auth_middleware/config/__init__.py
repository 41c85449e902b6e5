"""`AuthConfig`: every option of the middleware, read, checked and given its default once,
grouped by concern as httpx groups its own (`Timeout`, `Limits`, `Proxy`).

Each group is a small immutable object that checks its own values when it is built:

- `Resource`: the protected resource's URL, parsed once (its origin, host, path, the URL of
  its metadata document);
- `Validation`: how the one-line form finds and checks tokens (issuer, introspection);
- `ScopeRules`: which scopes a request needs (globally, per tool, method, resource, prompt);
- `BrowserAccess`: which browser origins may call (DNS rebinding) and CORS;
- `Limits`: input sizes; `Guard`: the token-guessing guard; `DPoP`: sender-constrained tokens.

The middleware takes either flat keyword options (`MCPAuthMiddleware(app, resource=...,
max_body=...)`), which build these groups, or the groups themselves (`limits=Limits(...)`),
or an `AuthConfig`; `AuthConfig.from_env()` reads the `MCP_AUTH_*` variables into the same
keywords. Whatever cannot work is a `ValueError` that names the option, at construction, never
on the first request. This module sits below what it configures: it builds no validator
(`validators.build` does) and imports only values and contracts.
"""

from __future__ import annotations

import difflib
import inspect
import os
from collections.abc import Mapping
from typing import Any, Literal

from ..auth_info import TokenValidator
from ..engines.contract import DECIDED_METHODS
from ..values import check_server_url, read_variables, word_list
from .broker import BrokerContract
from .groups import (
    DEFAULT_DPOP_ALGORITHMS,
    FORWARDED_HEADERS,
    BrowserAccess,
    Callers,
    DPoP,
    ForwardedHeader,
    Guard,
    Limits,
    ListMode,
    Resource,
    Rule,
    ScopeRules,
    TokenValidation,
    Validation,
    Words,
)
from .variables import KNOWN_VARIABLES, VARIABLES, decision_engine

__all__ = [
    "DEFAULT_DECIDED_METHODS",
    "DEFAULT_DPOP_ALGORITHMS",
    "FORWARDED_HEADERS",
    "KNOWN_VARIABLES",
    "AuthConfig",
    "BrowserAccess",
    "Callers",
    "DPoP",
    "ForwardedHeader",
    "Guard",
    "Limits",
    "ListMode",
    "Resource",
    "Rule",
    "ScopeRules",
    "TokenValidation",
    "Validation",
    "check_option_names",
]


#: Flat keywords and the group field each one sets.
_GROUPED: dict[str, tuple[str, str]] = {
    "issuer": ("validation", "issuer"),
    "issuers": ("validation", "issuers"),
    "token_validation": ("validation", "token_validation"),
    "jwks_uri": ("validation", "jwks_uri"),
    "introspection_endpoint": ("validation", "introspection_endpoint"),
    "client_id": ("validation", "client_id"),
    "client_secret": ("validation", "client_secret"),
    "required_scopes": ("scopes", "required"),
    "tool_scopes": ("scopes", "tools"),
    "method_scopes": ("scopes", "methods"),
    "resource_scopes": ("scopes", "resources"),
    "prompt_scopes": ("scopes", "prompts"),
    "scope_rule": ("scopes", "rule"),
    "implied_scopes": ("scopes", "implied"),
    "prefix_implies": ("scopes", "prefix_implies"),
    "challenge_granted_scopes": ("scopes", "challenge_granted"),
    "list_filter": ("scopes", "lists"),
    "strict_rules": ("scopes", "strict"),
    "tool_callers": ("scopes", "callers"),
    "allowed_origins": ("browsers", "allowed_origins"),
    "cors_origins": ("browsers", "cors_origins"),
    "max_token_length": ("limits", "max_token_length"),
    "max_form_body": ("limits", "max_form_body"),
    "max_body": ("limits", "max_body"),
    "failure_limit": ("guard", "failure_limit"),
    "rate_limit_storage": ("guard", "storage"),
    "trusted_proxies": ("guard", "trusted_proxies"),
    "forwarded_header": ("guard", "forwarded_header"),
    "dpop_required": ("dpop", "required"),
    "dpop_algorithms": ("dpop", "algorithms"),
    "dpop_max_age": ("dpop", "max_age"),
    "dpop_nonces": ("dpop", "nonces"),
    "dpop_nonce_secret": ("dpop", "nonce_secret"),
}
_GROUPS: dict[str, type[Any]] = {
    "validation": Validation,
    "scopes": ScopeRules,
    "browsers": BrowserAccess,
    "limits": Limits,
    "guard": Guard,
    "dpop": DPoP,
}


#: The methods a decision engine decides by default (engines/contract.py).
DEFAULT_DECIDED_METHODS = DECIDED_METHODS


def _engine(engine: Any) -> Any:
    """A policy engine (`decide`, `decide_all`: engines.DecisionEngine), or None."""
    if engine is not None and not (
        callable(getattr(engine, "decide", None)) and callable(getattr(engine, "decide_all", None))
    ):
        raise ValueError("decision_engine must have decide() and decide_all() (engines.AuthZEN, engines.Cedar)")
    return engine


def _seconds(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 60:
        raise ValueError(f"{name} is in seconds, more than 0 and at most 60")
    return float(value)


def check_option_names(options: Mapping[str, Any]) -> None:
    """A ValueError naming an option that does not exist (a typo, most likely), with the
    closest one."""
    for name in options:
        if name not in _OPTIONS:
            close = difflib.get_close_matches(name, _OPTIONS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else " (docs/configuration.md lists them)"
            raise ValueError(f"unknown option {name!r}{hint}")


def _groups(flat: dict[str, Any], given: dict[str, Any], *, allow_http: bool) -> dict[str, Any]:
    """Each group: the one given, or one built from its flat options (not both)."""
    groups: dict[str, Any] = {}
    for group, cls in _GROUPS.items():
        options = {field: flat[name] for name, (g, field) in _GROUPED.items() if g == group and name in flat}
        if group == "validation":
            options["allow_http"] = allow_http
        existing = given[group]
        if isinstance(existing, cls):
            if options and group != "validation":
                raise ValueError(f"pass {group}= or its flat options ({', '.join(sorted(options))}), not both")
            groups[group] = existing
        elif group == "dpop":  # off unless asked for: dpop=True, or dpop_required
            groups[group] = cls(**options) if (existing or options.get("required")) else None
        else:
            groups[group] = cls(**options)
    return groups


def _authorization_servers(
    listed: Words | None, validation: Validation, validator: TokenValidator | None, *, allow_http: bool
) -> tuple[str, ...]:
    """RFC 9728 §2: the authorization servers advertised. With none here (only `validator=`),
    the validator's own issuers, which the middleware asks it for."""
    if validator is not None and (validation.issuers or validation.token_validation != "jwt"):
        raise ValueError("pass `validator=`, or the options that build one (issuers=, token_validation=), not both")
    if validator is None and validation.issuer is None and not validation.issuers:
        raise ValueError("pass `validator=`, or `issuer=` to discover the authorization server")
    servers = tuple(word_list(listed))
    if not servers:
        servers = (validation.issuer,) if validation.issuer else validation.issuers
    for server in servers:
        check_server_url("authorization server", server, allow_http=allow_http)
    return servers


def _broker_validator(
    broker: BrokerContract, resource: Resource, validation: Validation, validator: TokenValidator | None
) -> TokenValidator:
    """`broker=`: its tokens validated with its keys, for a resource it serves."""
    if validator is not None or validation.issuer or validation.issuers:
        raise ValueError("pass `broker=` alone: its tokens are validated with its own keys")
    if resource.url not in broker.settings.resources:
        # Clients ask for this resource (RFC 9728 metadata): the broker would refuse it.
        raise ValueError(
            f"the broker's resources {list(broker.settings.resources)} do not include this resource "
            f"{resource.url!r} (RFC 8707: its tokens are for those only)"
        )
    return broker.validator()


def _paths(public_paths: Words) -> tuple[str, ...]:
    paths = tuple(word_list(public_paths))
    if bad := [p for p in paths if not p.startswith("/")]:
        raise ValueError(f"public_paths are paths inside the app, starting with '/': not {bad[0]!r}")
    return paths


class AuthConfig:
    """The configuration of one protected resource; immutable once built.

    Every keyword is documented in docs/configuration.md. The groups are attributes:
    `resource`, `validation`, `scopes`, `browsers`, `limits`, `guard`, `dpop` (None when off).
    """

    __slots__ = (
        "allow_http",
        "authorization_servers",
        "broker",
        "browsers",
        "decided_methods",
        "decision_engine",
        "decision_timeout",
        "dpop",
        "expose_token",
        "guard",
        "limits",
        "log_allowed",
        "meter_provider",
        "public_paths",
        "realm",
        "resource",
        "resource_documentation",
        "resource_name",
        "scopes",
        "scopes_supported",
        "strict_startup",
        "validation",
        "validator",
    )

    resource: Resource
    #: Empty when only `validator=` says who issues tokens: its issuers are advertised.
    authorization_servers: tuple[str, ...]
    #: The validator given, or None: then the middleware builds one from `validation`.
    validator: TokenValidator | None
    #: The broker (`broker.Broker`) this resource's tokens come from: advertised, its tokens
    #: validated with its keys in process, its endpoints served beside the app.
    broker: BrokerContract | None
    validation: Validation
    scopes: ScopeRules
    browsers: BrowserAccess
    limits: Limits
    guard: Guard
    dpop: DPoP | None
    scopes_supported: tuple[str, ...] | None
    public_paths: tuple[str, ...]
    resource_name: str | None
    resource_documentation: str | None
    realm: str | None
    expose_token: bool
    log_allowed: bool
    allow_http: bool
    strict_startup: bool
    meter_provider: Any
    #: A policy engine (engines/) deciding each call of `decided_methods` after the scopes.
    decision_engine: Any
    decided_methods: frozenset[str]
    decision_timeout: float

    def __init__(
        self,
        *,
        resource: str | Resource | None = None,
        authorization_servers: Words | None = None,
        validator: TokenValidator | None = None,
        broker: BrokerContract | None = None,
        # How tokens are validated (group: validation=Validation(...))
        issuer: str | None = None,
        issuers: Words | None = None,
        token_validation: TokenValidation | None = None,
        jwks_uri: str | None = None,
        introspection_endpoint: str | None = None,
        client_id: str | None = None,
        client_secret: str | None = None,
        # Scopes (group: scopes=ScopeRules(...))
        required_scopes: Words | None = None,
        tool_scopes: Mapping[str, Words] | None = None,
        method_scopes: Mapping[str, Words] | None = None,
        resource_scopes: Mapping[str, Words] | None = None,
        prompt_scopes: Mapping[str, Words] | None = None,
        scope_rule: Rule | None = None,
        implied_scopes: Mapping[str, Words] | None = None,
        prefix_implies: bool | None = None,
        challenge_granted_scopes: bool | None = None,
        list_filter: ListMode | None = None,
        strict_rules: bool | None = None,
        tool_callers: Mapping[str, Callers] | None = None,
        # Browsers (group: browsers=BrowserAccess(...))
        allowed_origins: Words | None = None,
        cors_origins: Words | Literal[False] | None = False,
        # Input limits (group: limits=Limits(...))
        max_token_length: int | None = None,
        max_form_body: int | None = None,
        max_body: int | None = None,
        # The guessing guard (group: guard=Guard(...))
        failure_limit: str | Literal[False] | None = False,
        rate_limit_storage: str | None = None,
        trusted_proxies: Words | None = None,
        forwarded_header: ForwardedHeader | None = None,
        # DPoP (group: dpop=DPoP(...), or dpop=True)
        dpop: bool | DPoP = False,
        dpop_required: bool | None = None,
        dpop_algorithms: Words | None = None,
        dpop_max_age: int | None = None,
        dpop_nonces: bool | None = None,
        dpop_nonce_secret: str | None = None,
        # The groups themselves
        scopes: ScopeRules | None = None,
        browsers: BrowserAccess | None = None,
        limits: Limits | None = None,
        guard: Guard | None = None,
        validation: Validation | None = None,
        # The rest
        scopes_supported: Words | None = None,
        public_paths: Words = (),
        resource_name: str | None = None,
        resource_documentation: str | None = None,
        realm: str | None = None,
        expose_token: bool = False,
        log_allowed: bool = False,
        allow_http: bool = False,
        strict_startup: bool = False,
        meter_provider: Any = None,
        decision_engine: Any = None,
        decided_methods: Words | None = None,
        decision_timeout: float = 2.0,
    ) -> None:
        # The flat options given (locals(): the parameters, read before any other name is bound),
        # by group. None means "not given", except where None is a value (False is then unset).
        flat = {
            name: value
            for name, value in locals().items()
            if name in _GROUPED and (value is not False if name in _FALSE_IS_UNSET else value is not None)
        }
        given = {"scopes": scopes, "browsers": browsers, "limits": limits, "guard": guard, "validation": validation}
        groups = _groups(flat, {**given, "dpop": dpop}, allow_http=allow_http)
        parsed = Resource.of(resource, allow_http=allow_http)
        if broker is not None:
            validator = _broker_validator(broker, parsed, groups["validation"], validator)
        servers = _authorization_servers(authorization_servers, groups["validation"], validator, allow_http=allow_http)
        paths = _paths(public_paths)
        values = {
            **groups,
            "resource": parsed,
            "authorization_servers": servers,
            "validator": validator,
            "broker": broker,
            "scopes_supported": None if scopes_supported is None else tuple(word_list(scopes_supported)),
            "public_paths": paths,
            "resource_name": resource_name,
            "resource_documentation": resource_documentation,
            "realm": realm,
            "expose_token": expose_token,
            "log_allowed": log_allowed,
            "allow_http": allow_http,
            "strict_startup": strict_startup,
            "meter_provider": meter_provider,
            "decision_engine": _engine(decision_engine),
            "decided_methods": frozenset(
                word_list(decided_methods) if decided_methods is not None else DEFAULT_DECIDED_METHODS
            ),
            "decision_timeout": _seconds("decision_timeout", decision_timeout),
        }
        for name, value in values.items():
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"AuthConfig is immutable: build a new one instead of setting {name}")

    def __repr__(self) -> str:
        return f"AuthConfig(resource={self.resource.url!r}, authorization_servers={list(self.authorization_servers)!r})"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> AuthConfig:
        """The configuration the `MCP_AUTH_*` variables describe; keywords override them."""
        env = os.environ if environ is None else environ
        options = read_variables(VARIABLES, env, KNOWN_VARIABLES) | overrides
        if isinstance(options.get("decision_engine"), str):
            allow_http = bool(options.get("allow_http", False))
            options["decision_engine"] = decision_engine(options["decision_engine"], env, allow_http=allow_http)
        if "resource" not in options:
            raise ValueError("MCP_AUTH_RESOURCE is required")
        return cls(**options)


#: Flat options whose default is False because None is one of their values.
_FALSE_IS_UNSET = frozenset({"cors_origins", "failure_limit"})
_OPTIONS = frozenset(inspect.signature(AuthConfig.__init__).parameters) - {"self"}
