"""A `limits`-based guard against token guessing: failures are counted, successes are free.

Only callers that have failed recently are ever looked up in the rate-limit storage: a local,
bounded set of suspects is consulted first, so a legitimate request costs one dict lookup
however many addresses are attacking. With shared storage (Redis, Valkey) each replica
learns that a caller is a suspect from its own first failure, so a guesser gets at most one
extra attempt per replica beyond the shared limit.

`limits`' async in-memory storage sweeps every key on nearly every hit (about 0.9 ms at
10,000 keys, on the event loop); the memory storage used here sweeps at most once a second.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any, cast

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, Storage
from limits.aio.strategies import FixedWindowRateLimiter
from limits.errors import ConfigurationError as LimitsConfigurationError
from limits.errors import StorageError
from limits.storage import storage_from_string

from .config import FORWARDED_HEADERS, ForwardedHeader

__all__ = [
    "FORWARDED_HEADERS",
    "STORAGE_ERRORS",
    "ClientAddresses",
    "FailureLimiter",
    "ForwardedHeader",
    "client_address",
    "parse_networks",
]

logger = logging.getLogger("mcp_auth_middleware.rate_limit")


class LazySweepMemoryStorage(MemoryStorage):
    """`limits`' async memory storage, with its expiry sweep run at most once per interval."""

    STORAGE_SCHEME = ["async+lazymemory"]
    sweep_interval = 1.0

    def __init__(self, uri: str | None = None, wrap_exceptions: bool = False, **options: Any) -> None:
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)
        self._next_sweep = 0.0

    async def _MemoryStorage__schedule_expiry(self) -> None:  # overrides the name-mangled hook
        now = time.monotonic()
        if now >= self._next_sweep:
            self._next_sweep = now + self.sweep_interval
            await super()._MemoryStorage__schedule_expiry()  # type: ignore[misc]


#: A shared storage that cannot be reached: `limits` wraps its client's errors in StorageError.
STORAGE_ERRORS: tuple[type[Exception], ...] = (StorageError, OSError, TimeoutError)


def storage_for(uri: str) -> Storage:
    """`limits`' async storage for a URI: memory (swept lazily), or Redis/Valkey for replicas."""
    if uri in ("memory://", "async+memory://"):
        return LazySweepMemoryStorage()
    if not uri.startswith("async+"):
        uri = "async+" + uri  # "redis://..." means the async Redis storage here
    options: dict[str, Any] = {"wrap_exceptions": True}
    if uri.startswith(("async+redis://", "async+rediss://", "async+redis+")):
        # The `redis` extra installs redis-py (limits' default async client is coredis).
        options["implementation"] = "redispy"
    try:
        return cast(Storage, storage_from_string(uri, **options))
    except LimitsConfigurationError as exc:
        if "prerequisite not available" not in str(exc) and "could not be found" not in str(exc):
            raise ValueError(f"storage {uri.removeprefix('async+')!r}: {exc}") from None
        extra = "valkey" if "valkey" in uri else "redis"
        shown = uri.removeprefix("async+")
        raise ValueError(
            f"storage {shown!r} needs the {extra} client: pip install 'mcp-oauth-middleware[{extra}]'"
        ) from None


class FailureLimiter:
    """Counts failures per key (an address, a client id) and blocks keys past `limit`."""

    def __init__(
        self,
        limit: str = "20/minute",
        *,
        storage_uri: str = "memory://",
        key_prefix: str = "mcp-auth-middleware",
        max_suspects: int = 100_000,
    ) -> None:
        self.item: RateLimitItem = parse(limit)
        self.storage = storage_for(storage_uri)
        self.limiter = FixedWindowRateLimiter(self.storage)
        self.key_prefix = key_prefix
        self.max_suspects = max_suspects
        self.suspects: OrderedDict[str, float] = OrderedDict()  # key -> monotonic expiry
        self._warned_at = 0.0
        self.blocked = 0  # observable in tests and metrics

    def is_suspect(self, key: str) -> bool:
        """Has this key failed within the window? A dict lookup: the fast path for everyone."""
        expiry = self.suspects.get(key)
        if expiry is None:
            return False
        if expiry < time.monotonic():
            del self.suspects[key]
            return False
        return True

    async def retry_after(self, key: str) -> int | None:
        """Seconds to wait if `key` is blocked, else None. Fails open if the storage is down."""
        if not self.is_suspect(key):
            return None
        try:
            if await self.limiter.test(self.item, self.key_prefix, key):
                return None
            stats = await self.limiter.get_window_stats(self.item, self.key_prefix, key)
        except STORAGE_ERRORS as exc:
            self._storage_failed(exc)
            return None
        self.blocked += 1
        return max(1, int(stats.reset_time - time.time()) + 1)

    async def record_failure(self, *keys: str) -> None:
        expiry = time.monotonic() + self.item.get_expiry()
        for key in keys:
            self.suspects[key] = expiry
            self.suspects.move_to_end(key)
            try:
                await self.limiter.hit(self.item, self.key_prefix, key)
            except STORAGE_ERRORS as exc:
                self._storage_failed(exc)
        while len(self.suspects) > self.max_suspects:
            self.suspects.popitem(last=False)

    def _storage_failed(self, exc: BaseException) -> None:
        # Fail open: valid tokens keep working while the shared storage is down.
        now = time.monotonic()
        if now - self._warned_at > 10:
            self._warned_at = now
            logger.warning("rate-limit storage unavailable, not limiting (%s)", type(exc).__name__)


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(trusted_proxies: Iterable[str]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(n, strict=False) for n in trusted_proxies)


class ClientAddresses:
    """`client_address` for one configuration: which proxies are trusted, which header they write."""

    __slots__ = ("header", "networks", "warned")

    def __init__(self, trusted_proxies: Iterable[str] = (), header: ForwardedHeader = "x-forwarded-for") -> None:
        if header not in FORWARDED_HEADERS:
            raise ValueError(f"forwarded_header must be one of {FORWARDED_HEADERS}, not {header!r}")
        self.networks = parse_networks(trusted_proxies)
        self.header: ForwardedHeader = header
        self.warned = False

    def __call__(self, scope: Mapping[str, Any]) -> str:
        if not self.warned:
            client = scope.get("client")
            peer = str(client[0]) if client else "unknown"
            if not _in(peer, self.networks):
                self._warn_if_forwarded(scope, peer)
        return client_address(scope, self.networks, self.header)

    def _warn_if_forwarded(self, scope: Mapping[str, Any], peer: str) -> None:
        """Once: forwarding headers from a peer we do not trust are ignored, which behind a
        proxy puts every client on the proxy's address (one shared failure budget).

        Unless the server already applied them: uvicorn (`--proxy-headers`, on by default for
        `--forwarded-allow-ips 127.0.0.1`) replaces the peer with the client it finds in
        X-Forwarded-For and leaves the header, so the "peer" is then the client itself."""
        forwarded = [value for name, value in scope["headers"] if name in (b"x-forwarded-for", b"forwarded")]
        if not forwarded:
            return
        self.warned = True
        hops = {hop.strip() for value in forwarded for hop in value.decode("latin-1").split(",")}
        if peer in hops or f"for={peer}" in hops or f'for="{peer}"' in hops:
            logger.info(
                "requests carry X-Forwarded-For and the server already took the client address from it (uvicorn "
                "does for a proxy in --forwarded-allow-ips, 127.0.0.1 by default): clients are told apart by their "
                "own addresses, such as %s; trusted_proxies is not needed for that proxy (docs/deployment.md)",
                peer,
            )
        else:
            logger.warning(
                "a request from %s carries X-Forwarded-For or Forwarded, which is ignored: %s is not in "
                "trusted_proxies. Behind a reverse proxy, set trusted_proxies (MCP_AUTH_TRUSTED_PROXIES), or "
                "every client shares the proxy's address and its failure budget",
                peer,
                peer,
            )


def client_address(
    scope: Mapping[str, Any], networks: tuple[Network, ...] = (), header: ForwardedHeader = "x-forwarded-for"
) -> str:
    """The caller's address: the peer, or behind trusted proxies the rightmost hop of `header`
    that is not one of them.

    Only the header the proxies write is read (a client can send the other one, and anything
    left of its own hop, with any value). Several field lines of it are one list, in order
    (RFC 9110 §5.3); each proxy appends the address it received from (RFC 7239 §4, §8.1).
    """
    client = scope.get("client")
    peer = str(client[0]) if client else "unknown"
    if not networks or not _in(peer, networks):
        return peer
    name = header.encode()
    lines = [value.decode("latin-1") for key, value in scope["headers"] if key == name]
    if not lines:
        return peer
    hops = _forwarded_for(lines) if header == "forwarded" else [h.strip() for h in ",".join(lines).split(",")]
    for hop in reversed(hops):
        if not hop:
            return peer  # a proxy's element without `for`: nothing left of it can be trusted
        address = _address(hop)
        if address is None or not _in(address, networks):
            # The first hop (from the right) that no trusted proxy wrote as its own peer; an
            # obfuscated or `unknown` one (RFC 7239 §6) still stands for that one client.
            return address or hop
    return peer


def _forwarded_for(lines: list[str]) -> list[str | None]:
    """The `for` of each element of a Forwarded list, None where an element has none.

    Quotes are not parsed as grouping: a client's unbalanced quote must not be able to swallow
    the elements its proxies append.
    """
    hops: list[str | None] = []
    for element in ",".join(lines).split(","):
        found: str | None = None
        for pair in element.split(";"):
            key, _, value = pair.strip().partition("=")
            if key.lower() == "for":
                found = value.strip().strip('"')
        hops.append(found)
    return hops


def _address(hop: str) -> str | None:
    """An IP address in its normal form, from `1.2.3.4`, `1.2.3.4:80`, `::1`, `[::1]:80`; else None."""
    if hop.startswith("["):
        hop = hop[1:].partition("]")[0]
    elif hop.count(":") == 1:
        hop = hop.partition(":")[0]
    try:
        return str(ipaddress.ip_address(hop))
    except ValueError:
        return None


def _in(address: str, networks: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)
