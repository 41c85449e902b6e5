"""The option groups of `AuthConfig`, one concern each, as httpx groups its own options
(`Timeout`, `Limits`, `Proxy`): small immutable objects that check their own values when they
are built, so that whatever cannot work is a ValueError naming the option, at construction."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any, Literal
from urllib.parse import urlsplit

from limits import parse as parse_rate_limit

from ..urls import origin_of, well_known_path
from ..values import LOOPBACK_HOSTS, check_scope_token, check_server_url, network_list, word_list

__all__ = [
    "DEFAULT_DPOP_ALGORITHMS",
    "FORWARDED_HEADERS",
    "BrowserAccess",
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
    "Words",
]

TokenValidation = Literal["jwt", "introspection", "both"]
#: What lists show a caller (listing.py): every entry marked with the scopes its call needs,
#: only what the caller may call, or every entry as the app lists it.
ListMode = Literal["annotate", "hide", "all"]
#: Who may call a tool: people (a client acting for a signed-in user) or machines (a client
#: acting for itself, client credentials: RFC 9068 §2.2 names the client as `sub`).
Callers = Literal["users", "machines"]
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

    @classmethod
    def of(cls, resource: str | Resource | None, *, allow_http: bool = False) -> Resource:
        """`resource` parsed (or as given); a ValueError that says what it must be when missing."""
        if isinstance(resource, Resource):
            return resource
        if resource is None:
            raise ValueError(
                "`resource` is required: the URL clients use for this MCP server, "
                'e.g. resource="https://mcp.example.com/mcp" (MCP_AUTH_RESOURCE)'
            )
        return cls(resource, allow_http=allow_http)

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
    #: What `tools/list` and the other lists show a caller (listing.py).
    lists: ListMode = "annotate"
    #: Warn about every listed tool no rule and no global scope covers.
    strict: bool = False
    #: Tools only people, or only machines, may call (`AuthInfo.is_machine`).
    callers: Mapping[str, Callers] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.lists not in ("annotate", "hide", "all"):
            raise ValueError(f"list_filter must be 'annotate', 'hide' or 'all', not {self.lists!r}")
        for name, who in self.callers.items():
            if who not in ("users", "machines"):
                raise ValueError(f"tool_callers: {name!r} must be 'users' or 'machines', not {who!r}")
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
        return bool(self.tools or self.methods or self.resources or self.prompts or self.rule or self.callers)

    def describe(self) -> str:
        """The rules in force, in one line for a startup message."""
        parts = [f"required scopes: {' '.join(sorted(self.required)) or 'none'}"]
        for label, rules in (
            ("per tool", self.tools),
            ("per method", self.methods),
            ("per resource", self.resources),
            ("per prompt", self.prompts),
        ):
            if rules:
                entries = "; ".join(f"{name}={' '.join(sorted(scopes))}" for name, scopes in sorted(rules.items()))
                parts.append(f"{label}: {entries}")
        if self.rule is not None:
            parts.append("a scope_rule")
        if self.callers:
            parts.append("callers: " + "; ".join(f"{name}={who}" for name, who in sorted(self.callers.items())))
        return ", ".join(parts)

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
        proxies = network_list("trusted_proxies", self.trusted_proxies)
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
