"""Fetching a URL that a client named, without letting the client reach the server's network.

A Client ID Metadata Document is fetched from whatever URL a client sends as its `client_id`
(CIMD draft, Security Considerations: SSRF). Whatever its spelling (`10.0.0.1`,
`2130706433`, `[::ffff:10.0.0.1]`, a name that resolves to a private address), the host is
resolved first, every address it resolves to must be a public one (not special-use, RFC 6890;
loopback only in development), and the request then goes to that checked address, with the
host name kept for `Host` and for TLS (SNI and certificate), so a second lookup cannot
answer differently (DNS rebinding).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit, urlunsplit

from ..urls import DEFAULT_PORTS

__all__ = ["NotPublicError", "is_public", "public_target"]

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class NotPublicError(OSError):
    """The URL's host is or resolves to an address this server must not connect to."""


def is_public(address: Address, *, loopback: bool = False) -> bool:
    """A globally reachable unicast address (RFC 6890 registries, as `ipaddress` keeps them);
    loopback too when `loopback` (development). Addresses that carry an IPv4 address inside
    (IPv4-mapped, 6to4, Teredo) are judged by it as well."""
    if address.is_loopback:
        return loopback
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return is_public(address.ipv4_mapped, loopback=loopback)
        inner = [address.sixtofour, *(address.teredo or ())]
        if any(v4 is not None and not is_public(v4) for v4 in inner):
            return False
        if address.is_site_local:
            return False
    return address.is_global and not address.is_multicast and not address.is_reserved


async def public_target(url: str, *, loopback: bool = False) -> tuple[str, str, dict[str, str]]:
    """The URL rewritten to a checked address of its host, the `Host` header value, and the
    request extensions that keep TLS on the host name; NotPublicError when the host is not
    public (or does not resolve)."""
    parts = urlsplit(url)
    host, scheme = parts.hostname, parts.scheme.lower()
    if not host or scheme not in DEFAULT_PORTS:
        raise NotPublicError(f"not an http(s) URL with a host: {url!r}")
    port = parts.port or DEFAULT_PORTS[scheme]
    try:
        found = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise NotPublicError(f"{host!r} does not resolve: {exc}") from None
    addresses = [ipaddress.ip_address(str(info[4][0]).partition("%")[0]) for info in found]
    refused = [str(a) for a in addresses if not is_public(a, loopback=loopback)]
    if refused or not addresses:
        raise NotPublicError(f"{host!r} resolves to {', '.join(refused) or 'nothing'}, not a public address")
    address = addresses[0]
    netloc = f"[{address}]" if address.version == 6 else str(address)
    if parts.port is not None:
        netloc += f":{parts.port}"
    target = urlunsplit((scheme, netloc, parts.path, parts.query, ""))
    host_header = parts.netloc.rpartition("@")[2]
    return target, host_header, ({"sni_hostname": host} if scheme == "https" else {})
