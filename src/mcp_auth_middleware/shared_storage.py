"""A Redis or Valkey client from a URI, through their own asyncio clients (the `redis` or
`valkey` extra): for what replicas share (the exchange cache, the broker's records)."""

from __future__ import annotations

from typing import Any

__all__ = ["connect"]


def connect(uri: str, what: str) -> tuple[Any, tuple[type[BaseException], ...]]:
    """The client for `uri` (`redis://`, `rediss://`, `unix://`, `valkey://`, `valkeys://`; an
    `async+` prefix, as `limits` writes them, is allowed) and the errors it raises when the
    storage is unreachable. `what` names the storage in errors."""
    uri = uri.removeprefix("async+")
    scheme = uri.partition("://")[0].lower()
    try:
        if scheme.startswith("valkey"):
            from valkey.asyncio import Valkey
            from valkey.exceptions import ValkeyError

            return Valkey.from_url(uri), (OSError, TimeoutError, ValkeyError)
        if scheme in ("redis", "rediss", "unix"):
            from redis.asyncio import Redis
            from redis.exceptions import RedisError

            return Redis.from_url(uri), (OSError, TimeoutError, RedisError)
    except ImportError as exc:
        extra = "valkey" if scheme.startswith("valkey") else "redis"
        raise ValueError(f"{what} needs pip install 'mcp-oauth-middleware[{extra}]'") from exc
    raise ValueError(f"{what} must be redis://, rediss:// or valkey://, not {scheme}://")
