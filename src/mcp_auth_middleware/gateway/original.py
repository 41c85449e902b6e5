"""The request a gateway asks about, rebuilt as an ASGI scope from its subrequest.

Each gateway says what the client asked for in its own way: nginx in the headers its
configuration sets (`X-Original-Method`, `X-Original-URI`, `X-Original-Host`), Caddy and
Traefik in `X-Forwarded-Method`, `-Uri`, `-Host` and `-Proto`, Envoy's HTTP ext_authz by
sending the original method and path (after a prefix) itself. A client can send any of these
headers too, and Caddy, Traefik and Envoy pass a client's headers on to the service: only the
ones the configured gateway overwrites are read, and only from a trusted gateway's address.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from urllib.parse import unquote

from starlette.types import Scope

from ..mcp_headers import headers_are_checked
from ..rate_limit import Network, parse_networks
from .options import GatewayOptions

__all__ = ["AmbiguousPath", "GatewayProblem", "OriginalRequest", "UntrustedGateway"]


class UntrustedGateway(Exception):
    """The subrequest came from an address that is not a trusted gateway's."""


class AmbiguousPath(Exception):
    """The original path is not in normal form (dot segments, `//`, an encoded slash): the
    gateway, the service and the upstream could each read it as another path, and a public
    one could stand for a protected one (`/public/../mcp`)."""


class GatewayProblem(Exception):
    """The subrequest lacks what the configured gateway always sends: its configuration (or
    `gateway=`) is wrong."""


#: Per gateway: the headers holding the original method, URI, host and scheme (None: from the
#: subrequest itself).
_NAMES: dict[str, tuple[str | None, str | None, str | None, str | None]] = {
    "nginx": ("X-Original-Method", "X-Original-URI", "X-Original-Host", None),
    "caddy": ("X-Forwarded-Method", "X-Forwarded-Uri", "X-Forwarded-Host", "X-Forwarded-Proto"),
    "traefik": ("X-Forwarded-Method", "X-Forwarded-Uri", "X-Forwarded-Host", "X-Forwarded-Proto"),
    "envoy": (None, None, None, None),
}
#: Describe the subrequest, not the request: not passed on to the checks.
_SUBREQUEST_HEADERS = frozenset(
    {
        b"x-original-method",
        b"x-original-uri",
        b"x-original-host",
        b"x-forwarded-method",
        b"x-forwarded-uri",
        b"x-forwarded-host",
        b"x-forwarded-proto",
        b"content-length",
        b"content-type",  # the body is not sent: there is no form to look into
        b"transfer-encoding",
    }
)
#: Name the message for per-tool rules; trusted only when the upstream must check them.
_MCP_HEADERS = (b"mcp-method", b"mcp-name")


class OriginalRequest:
    """Rebuilds the original request from a subrequest, for one gateway configuration."""

    def __init__(self, options: GatewayOptions, resource_url: str) -> None:
        self.kind = options.gateway
        self.names = _NAMES[options.gateway]
        lower = [name.lower().encode() if name else None for name in self.names]
        self.method_header, self.uri_header, self.host_header, self.proto_header = lower
        self.networks: tuple[Network, ...] = parse_networks(options.trusted_gateways)
        self.prefix = options.check_path
        # Gateways are few: each peer address is parsed and matched once.
        self._trusted = lru_cache(maxsize=1024)(self._is_trusted)
        self.scheme = resource_url.split(":", 1)[0]

    def trusted(self, scope: Scope) -> bool:
        client = scope.get("client")
        return client is not None and self._trusted(client[0])

    def _is_trusted(self, peer: str) -> bool:
        try:
            address = ipaddress.ip_address(peer)
        except ValueError:
            return False
        return any(address in network for network in self.networks)

    def scope(self, scope: Scope) -> Scope:
        """The original request's scope, with the Host it was sent to (the middleware says once
        when that is not the resource's host), and `Mcp-Method`/`Mcp-Name` only when the
        upstream must check them against the body (`headers_are_checked`). Raises
        UntrustedGateway, GatewayProblem or AmbiguousPath."""
        if not self.trusted(scope):
            raise UntrustedGateway
        found: dict[bytes, bytes] = {}
        wanted = {self.method_header, self.uri_header, self.host_header, self.proto_header, b"host"}
        headers = []
        versions = []
        for name, value in scope["headers"]:
            if name == b"mcp-protocol-version":
                versions.append(value)
            if name in wanted:
                if name in found and name != b"host":
                    raise GatewayProblem(f"the subrequest carries more than one {name.decode()} header")
                found[name] = value
            if name not in _SUBREQUEST_HEADERS and name != b"host":
                headers.append((name, value))
        if self.uri_header is None:  # envoy: the subrequest's own method and path, after the prefix
            method = scope["method"]
            raw: bytes = scope.get("raw_path") or scope["path"].encode()
            if not raw.startswith(self.prefix.encode()):
                raise GatewayProblem(
                    f"the subrequest's path does not start with check_path {self.prefix!r} "
                    "(set path_prefix in the ext_authz http_service to match)"
                )
            raw = raw[len(self.prefix) :] or b"/"
            query = scope.get("query_string", b"")
            host = found.get(b"host")
        else:
            assert self.method_header is not None
            method_value, uri = found.get(self.method_header), found.get(self.uri_header)
            if method_value is None or uri is None:
                missing = " and no ".join(
                    f"{name}" for name, value in zip(self.names[:2], (method_value, uri), strict=True) if value is None
                )
                raise GatewayProblem(
                    f"the subrequest carries no {missing} header, which {self.kind} is configured to send "
                    f"(docs/gateways.md): is the gateway in front {self.kind} (--gateway, MCP_AUTH_GATEWAY), and "
                    "its configuration the one shown there?"
                )
            method = method_value.decode("latin-1")
            raw, _, query = uri.partition(b"?")
            host = found.get(self.host_header) if self.host_header else None
        if not raw.startswith(b"/") or not method.isalpha():
            raise GatewayProblem("the original method or URI the gateway sent is not one a client could have sent")
        path = unquote(raw.decode("latin-1"))
        if _ambiguous(raw, path):
            raise AmbiguousPath
        scheme = self.scheme
        if self.proto_header is not None and (proto := found.get(self.proto_header)) in (b"http", b"https"):
            scheme = proto.decode()
        if host is not None:
            headers.append((b"host", host))
        if not headers_are_checked(versions):
            # The upstream routes this request by its body and never compares it with Mcp-Method
            # or Mcp-Name: a request without MCP headers, as far as the checks can know.
            headers = [(name, value) for name, value in headers if name not in _MCP_HEADERS]
        return {
            "type": "http",
            "asgi": scope.get("asgi", {"version": "3.0"}),
            "http_version": scope.get("http_version", "1.1"),
            "method": method.upper(),
            "scheme": scheme,
            "path": path,
            "raw_path": raw,
            "query_string": query,
            "root_path": "",
            "headers": headers,
            "client": scope.get("client"),
            "server": scope.get("server"),
            "state": {},
        }


def _ambiguous(raw: bytes, path: str) -> bool:
    """Dot segments, empty segments or an encoded slash or backslash, before or after decoding."""
    lowered = raw.lower()
    if b"%2f" in lowered or b"%5c" in lowered or "\\" in path:
        return True
    return "//" in path or any(segment in (".", "..") for segment in path.split("/"))
