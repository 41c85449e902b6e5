"""`GatewayOptions`: what the authorization service needs beyond the middleware's configuration.

Which gateway asks (it decides where the original method and URI are read from), which
addresses may ask, what to do with requests that do not name their tool in headers, and how the
caller's identity is handed to the upstream. Checked once, at construction.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from ..config import KNOWN_VARIABLES
from ..values import network_list, read_variables, word_list

__all__ = [
    "DEFAULT_IDENTITY_HEADERS",
    "GATEWAY_VARIABLES",
    "GatewayKind",
    "GatewayOptions",
    "WithoutMcpHeaders",
]

GatewayKind = Literal["nginx", "caddy", "traefik", "envoy"]
#: A POST without Mcp-Method when per-tool rules exist: refused (400), or decided under the
#: global scopes only (the upstream then gets a tool call nobody checked per tool).
WithoutMcpHeaders = Literal["refuse", "global"]

#: What of the caller goes to the upstream, and in which request header.
DEFAULT_IDENTITY_HEADERS: Mapping[str, str] = {
    "sub": "X-Auth-Subject",
    "client_id": "X-Auth-Client-Id",
    "scopes": "X-Auth-Scopes",
    "issuer": "X-Auth-Issuer",
}
_LOOPBACK = ("127.0.0.1/32", "::1/128")
_TOKEN_CHARS = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def _header_name(option: str, name: str) -> str:
    if not name or not set(name) <= _TOKEN_CHARS:
        raise ValueError(f"{option}: {name!r} is not a header name")
    return name


@dataclass(frozen=True)
class GatewayOptions:
    """How the service reads a gateway's subrequests and what it answers them.

    - `gateway`: `nginx` (reads `X-Original-Method`, `X-Original-URI`, `X-Original-Host`, which
      the nginx configuration sets), `caddy` or `traefik` (`X-Forwarded-Method`, `-Uri`, `-Host`,
      `-Proto`, which they set), `envoy` (ext_authz in HTTP mode: the subrequest has the
      original method, and the original path after `check_path`). Required: a client can
      send any of these headers itself, and only the ones the gateway overwrites are true.
    - `check_path`: the path the gateway sends its subrequests to (`/check`; Envoy's
      `path_prefix`). Only there are requests checked: every other path but the metadata's
      and the keys' is 404, so a route that forwards clients' requests here is no second way in.
    - `trusted_gateways`: the addresses (or networks) subrequests may come from; anything else
      is refused. Loopback by default.
    - `without_mcp_headers`: see `WithoutMcpHeaders`. `refuse` by default (fail closed).
    - `identity_headers`: `sub`, `client_id`, `scopes`, `issuer` to header names; the ones not
      named keep their defaults (`X-Auth-Subject`, ...).
    - `assertion_key`: a private key (PEM text or a JWK) that signs a short-lived JWT of the
      same identity in `assertion_header`, for upstreams that verify rather than trust the
      network; its public half is served at `/.well-known/jwks.json`.
    """

    gateway: GatewayKind
    trusted_gateways: tuple[str, ...] = _LOOPBACK
    without_mcp_headers: WithoutMcpHeaders = "refuse"
    identity_headers: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_IDENTITY_HEADERS))
    assertion_key: str | Mapping[str, Any] | None = None
    assertion_header: str = "X-Auth-Assertion"
    assertion_lifetime: int = 60
    assertion_issuer: str | None = None
    check_path: str = "/check"

    def __post_init__(self) -> None:
        kinds = get_args(GatewayKind)
        if self.gateway not in kinds:
            raise ValueError(f"gateway must be one of {', '.join(kinds)}, not {self.gateway!r}")
        object.__setattr__(self, "trusted_gateways", network_list("trusted_gateways", self.trusted_gateways))
        if self.without_mcp_headers not in get_args(WithoutMcpHeaders):
            raise ValueError(f"without_mcp_headers must be 'refuse' or 'global', not {self.without_mcp_headers!r}")
        unknown = set(self.identity_headers) - set(DEFAULT_IDENTITY_HEADERS)
        if unknown:
            raise ValueError(
                f"identity_headers: {', '.join(sorted(unknown))} is not one of {', '.join(DEFAULT_IDENTITY_HEADERS)}"
            )
        # The ones named change; the others keep their default names.
        headers = {**DEFAULT_IDENTITY_HEADERS, **self.identity_headers}
        for name in headers.values():
            _header_name("identity_headers", name)
        _header_name("assertion_header", self.assertion_header)
        names = [name.lower() for name in (*headers.values(), self.assertion_header)]
        if len(set(names)) != len(names):
            raise ValueError("identity_headers and assertion_header: each needs a header of its own")
        object.__setattr__(self, "identity_headers", headers)
        if not 1 <= self.assertion_lifetime <= 3600:
            raise ValueError("assertion_lifetime is in seconds, from 1 to 3600")
        path = self.check_path
        if not path.startswith("/") or path.endswith("/") or path.startswith("/.well-known/"):
            raise ValueError(
                f"check_path {path!r}: a path of its own that starts with / and does not end with one, as in '/check'"
            )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> GatewayOptions:
        """The options the `MCP_AUTH_GATEWAY*` variables describe; keywords override them."""
        options = read_variables(GATEWAY_VARIABLES, environ, KNOWN_VARIABLES) | overrides
        if "gateway" not in options:
            raise ValueError(f"MCP_AUTH_GATEWAY is required: one of {', '.join(get_args(GatewayKind))}")
        return cls(**options)


def _identity_headers(text: str) -> dict[str, str]:
    """`sub=X-User,scopes=X-Scopes`: the named ones change, the others keep their defaults."""
    headers: dict[str, str] = {}
    for pair in word_list(text):
        what, equals, name = pair.partition("=")
        if not equals:
            raise ValueError(f"MCP_AUTH_IDENTITY_HEADERS: {pair!r} is not what=Header-Name")
        headers[what] = name
    return headers


def _read_file(path: str) -> str:
    with open(path, encoding="utf-8") as file:
        return file.read()


#: Each `MCP_AUTH_*` variable of the gateway service: the option it sets, and how it is read.
GATEWAY_VARIABLES: dict[str, tuple[str, Any]] = {
    "MCP_AUTH_GATEWAY": ("gateway", str.strip),
    "MCP_AUTH_TRUSTED_GATEWAYS": ("trusted_gateways", word_list),
    "MCP_AUTH_WITHOUT_MCP_HEADERS": ("without_mcp_headers", str.strip),
    "MCP_AUTH_IDENTITY_HEADERS": ("identity_headers", _identity_headers),
    "MCP_AUTH_ASSERTION_KEY_FILE": ("assertion_key", _read_file),
    "MCP_AUTH_ASSERTION_LIFETIME": ("assertion_lifetime", int),
    "MCP_AUTH_ASSERTION_ISSUER": ("assertion_issuer", str.strip),
    "MCP_AUTH_CHECK_PATH": ("check_path", str.strip),
}
