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
import ipaddress
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any, Literal
from urllib.parse import urlsplit

from limits import parse as parse_rate_limit

from .auth_info import TokenValidator
from .urls import origin_of, well_known_path
from .values import LOOPBACK_HOSTS, check_scope_token, check_server_url, flag, word_list

__all__ = [
    "DEFAULT_DPOP_ALGORITHMS",
    "FORWARDED_HEADERS",
    "AuthConfig",
    "BrowserAccess",
    "DPoP",
    "ForwardedHeader",
    "Guard",
    "Limits",
    "Resource",
    "Rule",
    "ScopeRules",
    "TokenValidation",
    "Validation",
]

TokenValidation = Literal["jwt", "introspection", "both"]
ForwardedHeader = Literal["x-forwarded-for", "forwarded"]
FORWARDED_HEADERS: tuple[ForwardedHeader, ...] = ("x-forwarded-for", "forwarded")
#: Asymmetric JWS algorithms a DPoP proof may use (RFC 9449 §4.2), as clients use them.
DEFAULT_DPOP_ALGORITHMS: tuple[str, ...] = ("ES256", "ES384", "ES512", "PS256", "PS384", "PS512", "RS256", "EdDSA")
#: `rule(method, params)` -> extra scopes this message needs (or None), for dynamic policy.
Rule = Callable[[str, Mapping[str, Any] | None], Iterable[str] | None]
Words = str | Iterable[str]


def _set(instance: object, **values: Any) -> None:
    """Normalised values into a frozen dataclass, from its own __post_init__."""
    for name, value in values.items():
        object.__setattr__(instance, name, value)


@dataclass(frozen=True, slots=True)
class Resource:
    """The protected resource's canonical URL (RFC 9728 §1.2, RFC 8707 §2), parsed once.

    Served byte for byte in the metadata (clients compare it exactly, RFC 9728 §3.3): absolute,
    https (plain http on loopback or with `allow_http`), no query, no fragment.
    """

    url: str
    allow_http: bool = field(default=False, repr=False)
    #: `scheme://host[:port]` as written: the base of the URL clients use (DPoP `htu`).
    origin: str = field(init=False, repr=False)
    #: The host and port, lowercase: what a request's `Host` should say.
    host: str = field(init=False, repr=False)
    loopback: bool = field(init=False, repr=False)
    #: Where its metadata document is served (RFC 9728 §3.1), path and full URL.
    metadata_path: str = field(init=False, repr=False)
    metadata_url: str = field(init=False, repr=False)

    def __post_init__(self) -> None:
        parts = urlsplit(check_server_url("resource", self.url, allow_http=self.allow_http))
        origin = f"{parts.scheme}://{parts.netloc}"
        path = well_known_path(self.url)
        _set(
            self,
            origin=origin,
            host=parts.netloc.lower(),
            loopback=(parts.hostname or "").lower() in LOOPBACK_HOSTS,
            metadata_path=path,
            metadata_url=origin + path,
        )


@dataclass(frozen=True, slots=True)
class Validation:
    """How the one-line form validates tokens, from the issuer (RFC 8414 discovery)."""

    issuer: str | None = None
    #: Several trusted issuers, each token checked with its own issuer's keys (JWTs only).
    issuers: tuple[str, ...] = ()
    token_validation: TokenValidation = "jwt"
    jwks_uri: str | None = None
    introspection_endpoint: str | None = None
    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    allow_http: bool = False

    def __post_init__(self) -> None:
        issuers = tuple(check_server_url("issuer", i, allow_http=self.allow_http) for i in word_list(self.issuers))
        issuer = None if self.issuer is None else check_server_url("issuer", self.issuer, allow_http=self.allow_http)
        if self.token_validation not in ("jwt", "introspection", "both"):
            raise ValueError(
                f"token_validation must be 'jwt', 'introspection' or 'both', not {self.token_validation!r}"
            )
        if issuers and (issuer is not None or self.token_validation != "jwt"):
            raise ValueError("`issuers` discovers one JWTValidator per issuer: not with issuer= or introspection")
        if self.token_validation != "jwt" and not (self.client_id and self.client_secret):
            raise ValueError("token introspection needs `client_id` and `client_secret`")
        _set(self, issuer=issuer, issuers=issuers)


def _by_name(mapping: Mapping[str, Words] | None) -> Mapping[str, frozenset[str]]:
    return MappingProxyType({name: _scopes(words) for name, words in (mapping or {}).items()})


def _scopes(words: Words | None) -> frozenset[str]:
    return frozenset(check_scope_token(s) for s in word_list(words))


@dataclass(frozen=True, slots=True)
class ScopeRules:
    """Which scopes a request needs (MCP authorization, Scope Challenge Handling): all of
    `required`, plus those of the tool, method, resource URI (shell-style patterns) or prompt it
    names, plus what `rule` returns. `implied` is a scope hierarchy (transitive); with
    `prefix_implies`, a granted `files` covers any `files:...` scope."""

    required: frozenset[str] = frozenset()
    tools: Mapping[str, frozenset[str]] = field(default_factory=dict)
    methods: Mapping[str, frozenset[str]] = field(default_factory=dict)
    resources: Mapping[str, frozenset[str]] = field(default_factory=dict)
    prompts: Mapping[str, frozenset[str]] = field(default_factory=dict)
    rule: Rule | None = None
    implied: Mapping[str, frozenset[str]] = field(default_factory=dict)
    prefix_implies: bool = False
    #: 403 challenges also name the scopes already granted (the 2025-11-25 recommendation).
    challenge_granted: bool = False

    def __post_init__(self) -> None:
        _set(
            self,
            required=_scopes(self.required),
            tools=_by_name(self.tools),
            methods=_by_name(self.methods),
            resources=_by_name(self.resources),
            prompts=_by_name(self.prompts),
            implied=_by_name(self.implied),
        )

    @property
    def inspects_messages(self) -> bool:
        """Whether any rule looks at the JSON-RPC message (else the body is never read)."""
        return bool(self.tools or self.methods or self.resources or self.prompts or self.rule)

    def mentioned(self) -> frozenset[str]:
        """Every scope the rules name: advertised in `scopes_supported`."""
        groups = (self.tools, self.methods, self.resources, self.prompts, self.implied)
        return self.required.union(*(s for group in groups for s in group.values()), self.implied)


@dataclass(frozen=True, slots=True)
class BrowserAccess:
    """Which browser origins may call (MCP Streamable HTTP transport, Security Warning: the
    `Origin` of every request is validated), and the CORS answers for them.

    Allowed: the resource's own origin, `allowed_origins`, and loopback origins when the
    resource itself is on loopback; `"*"` turns validation off. `cors_origins=None` leaves
    CORS to the app.
    """

    allowed_origins: tuple[str, ...] = ()
    cors_origins: tuple[str, ...] | None = ("*",)
    #: `allowed_origins` as serialised origins (RFC 6454 §6.1), for comparisons.
    origins: frozenset[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        allowed = tuple(word_list(self.allowed_origins))
        origins = set()
        for value in allowed:
            if value == "*":
                continue
            normal = origin_of(value)
            if normal is None:
                raise ValueError(f"allowed_origins: not an http(s) origin: {value!r}")
            origins.add(normal)
        cors = None if self.cors_origins is None else tuple(word_list(self.cors_origins))
        _set(self, allowed_origins=allowed, cors_origins=cors, origins=frozenset(origins))

    @property
    def validation_off(self) -> bool:
        return "*" in self.allowed_origins


@dataclass(frozen=True, slots=True)
class Limits:
    """Input limits, in bytes: the `Authorization` value, a form body (read to refuse a token
    in it, RFC 6750 §2.2), a JSON-RPC body (read only when a scope rule needs it)."""

    max_token_length: int = 16 * 1024
    max_form_body: int = 64 * 1024
    max_body: int = 1024 * 1024

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{item.name} must be a positive number of bytes, not {value!r}")


@dataclass(frozen=True, slots=True)
class Guard:
    """The guard against token guessing: failed validations per client address (`limits`
    notation, `None` turns it off), where the counts live (memory, or Redis/Valkey shared by
    replicas), and which proxies' forwarding header names the client."""

    failure_limit: str | None = "60/minute"
    storage: str = "memory://"
    trusted_proxies: tuple[str, ...] = ()
    forwarded_header: ForwardedHeader = "x-forwarded-for"

    def __post_init__(self) -> None:
        if self.failure_limit is not None:
            try:
                parse_rate_limit(self.failure_limit)
            except ValueError:
                raise ValueError(
                    f"failure_limit {self.failure_limit!r} is not a rate limit: write it as '60/minute'"
                ) from None
        proxies = tuple(word_list(self.trusted_proxies))
        for network in proxies:
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError:
                raise ValueError(f"trusted_proxies: {network!r} is not an address or network") from None
        if self.forwarded_header not in FORWARDED_HEADERS:
            raise ValueError(f"forwarded_header must be one of {FORWARDED_HEADERS}, not {self.forwarded_header!r}")
        _set(self, trusted_proxies=proxies)


@dataclass(frozen=True, slots=True)
class DPoP:
    """DPoP-bound tokens with their proofs (RFC 9449); `required` refuses bearer tokens."""

    required: bool = False
    algorithms: tuple[str, ...] = DEFAULT_DPOP_ALGORITHMS
    #: Seconds a proof's `iat` may lie in the past, and in the future (clock skew).
    max_age: int = 300
    leeway: int = 30
    #: Server-provided nonces (RFC 9449 §8, §9); replicas that share the secret agree on them.
    nonces: bool = False
    nonce_secret: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        from joserfc.jws import JWSRegistry  # the JWS algorithms joserfc can verify

        algorithms = tuple(word_list(self.algorithms))
        bad = [a for a in algorithms if a == "none" or a.startswith("HS") or a not in JWSRegistry.algorithms]
        if bad or not algorithms:
            raise ValueError(f"DPoP algorithms must be asymmetric JWS algorithms, not {bad or 'none'}")
        if not 0 < self.max_age <= 3600 or not 0 <= self.leeway <= 300:
            raise ValueError("dpop max_age must be 1-3600 s and leeway 0-300 s")
        _set(self, algorithms=algorithms)


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


def _words(value: str) -> list[str]:
    return word_list(value)


def _off_or_limit(value: str) -> str | None:
    return None if value.strip() in ("", "off") else value.strip()


def _empty_is_none(value: str) -> list[str] | None:
    return word_list(value) or None  # an empty MCP_AUTH_CORS_ORIGINS turns CORS off


#: Each `MCP_AUTH_*` variable: the keyword it sets, and how its text is read.
_VARIABLES: dict[str, tuple[str, Callable[[str], Any]]] = {
    "MCP_AUTH_RESOURCE": ("resource", str),
    "MCP_AUTH_ISSUER": ("issuer", str),
    "MCP_AUTH_ISSUERS": ("issuers", _words),
    "MCP_AUTH_AUTHORIZATION_SERVERS": ("authorization_servers", _words),
    "MCP_AUTH_JWKS_URI": ("jwks_uri", str),
    "MCP_AUTH_INTROSPECTION_ENDPOINT": ("introspection_endpoint", str),
    "MCP_AUTH_CLIENT_ID": ("client_id", str),
    "MCP_AUTH_CLIENT_SECRET": ("client_secret", str),
    "MCP_AUTH_TOKEN_VALIDATION": ("token_validation", str),
    "MCP_AUTH_REQUIRED_SCOPES": ("required_scopes", _words),
    "MCP_AUTH_SCOPES_SUPPORTED": ("scopes_supported", _words),
    "MCP_AUTH_PUBLIC_PATHS": ("public_paths", _words),
    "MCP_AUTH_RESOURCE_NAME": ("resource_name", str),
    "MCP_AUTH_ALLOWED_ORIGINS": ("allowed_origins", _words),
    "MCP_AUTH_CORS_ORIGINS": ("cors_origins", _empty_is_none),
    "MCP_AUTH_FAILURE_LIMIT": ("failure_limit", _off_or_limit),
    "MCP_AUTH_RATE_LIMIT_STORAGE": ("rate_limit_storage", str),
    "MCP_AUTH_TRUSTED_PROXIES": ("trusted_proxies", _words),
    "MCP_AUTH_FORWARDED_HEADER": ("forwarded_header", str),
    "MCP_AUTH_LOG_ALLOWED": ("log_allowed", bool),
    "MCP_AUTH_ALLOW_HTTP": ("allow_http", bool),
    "MCP_AUTH_STRICT_STARTUP": ("strict_startup", bool),
    "MCP_AUTH_DPOP": ("dpop", bool),
    "MCP_AUTH_DPOP_REQUIRED": ("dpop_required", bool),
    "MCP_AUTH_DPOP_NONCES": ("dpop_nonces", bool),
    "MCP_AUTH_DPOP_NONCE_SECRET": ("dpop_nonce_secret", str),
}


def check_option_names(options: Mapping[str, Any]) -> None:
    """A ValueError naming an option that does not exist (a typo, most likely), with the
    closest one."""
    for name in options:
        if name not in _OPTIONS:
            close = difflib.get_close_matches(name, _OPTIONS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else " (docs/configuration.md lists them)"
            raise ValueError(f"unknown option {name!r}{hint}")


class AuthConfig:
    """The configuration of one protected resource; immutable once built.

    Every keyword is documented in docs/configuration.md. The groups are attributes:
    `resource`, `validation`, `scopes`, `browsers`, `limits`, `guard`, `dpop` (None when off).
    """

    __slots__ = (
        "allow_http",
        "authorization_servers",
        "browsers",
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

    def __init__(
        self,
        *,
        resource: str | Resource | None = None,
        authorization_servers: Words | None = None,
        validator: TokenValidator | None = None,
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
    ) -> None:
        # The flat options given (locals(): the parameters, read before any other name is bound),
        # by group. None means "not given", except where None is a value (False is then unset).
        flat = {
            name: value
            for name, value in locals().items()
            if name in _GROUPED and (value is not False if name in _FALSE_IS_UNSET else value is not None)
        }
        given = {"scopes": scopes, "browsers": browsers, "limits": limits, "guard": guard, "validation": validation}
        groups: dict[str, Any] = {}
        for group, cls in _GROUPS.items():
            options = {
                field_name: flat[name] for name, (g, field_name) in _GROUPED.items() if g == group and name in flat
            }
            if group == "validation":
                options["allow_http"] = allow_http
            existing = dpop if group == "dpop" else given[group]
            if isinstance(existing, cls):
                if options and group != "validation":
                    raise ValueError(f"pass {group}= or its flat options ({', '.join(sorted(options))}), not both")
                groups[group] = existing
            elif group == "dpop":
                groups[group] = cls(**options) if (dpop or options.get("required")) else None
            else:
                groups[group] = cls(**options)
        if resource is None:
            raise ValueError(
                "`resource` is required: the URL clients use for this MCP server, "
                'e.g. resource="https://mcp.example.com/mcp" (MCP_AUTH_RESOURCE)'
            )
        parsed = resource if isinstance(resource, Resource) else Resource(resource, allow_http=allow_http)
        checked = groups["validation"]
        if validator is not None and (checked.issuers or checked.token_validation != "jwt"):
            raise ValueError("pass `validator=`, or the options that build one (issuers=, token_validation=), not both")
        if validator is None and checked.issuer is None and not checked.issuers:
            raise ValueError("pass `validator=`, or `issuer=` to discover the authorization server")
        # RFC 9728 §2: the authorization servers advertised; with none here, the validator's
        # own issuers (the middleware asks it), at least one in the end.
        servers = tuple(word_list(authorization_servers))
        if not servers:
            servers = (checked.issuer,) if checked.issuer else checked.issuers
        for server in servers:
            check_server_url("authorization server", server, allow_http=allow_http)
        paths = tuple(word_list(public_paths))
        if bad := [p for p in paths if not p.startswith("/")]:
            raise ValueError(f"public_paths are paths inside the app, starting with '/': not {bad[0]!r}")
        values = {
            **groups,
            "resource": parsed,
            "authorization_servers": servers,
            "validator": validator,
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
        options: dict[str, Any] = {}
        for variable, (name, read) in _VARIABLES.items():
            text = env.get(variable)
            if text is not None:
                options[name] = flag(variable, text) if read is bool else read(text)
        options |= overrides
        if "resource" not in options:
            raise ValueError("MCP_AUTH_RESOURCE is required")
        return cls(**options)


#: Flat options whose default is False because None is one of their values.
_FALSE_IS_UNSET = frozenset({"cors_origins", "failure_limit"})
_OPTIONS = frozenset(inspect.signature(AuthConfig.__init__).parameters) - {"self"}
