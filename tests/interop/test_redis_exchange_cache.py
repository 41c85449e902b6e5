"""The exchanged-token cache shared by replicas through a real redis-server: one exchange serves
both replicas; what Redis holds is sealed with the caller's token (no token, no caller hash
in a key or a value); Redis down is a cache miss with a warning, never a failed tool call."""

from __future__ import annotations

import hashlib
import logging

import httpx2
import pytest
from redis.asyncio import Redis as RedisClient

from mcp_auth_middleware import AuthInfo
from mcp_auth_middleware.exchange import Downstream, TokenExchange
from mcp_auth_middleware.server import LocalAuthorizationServer
from mcp_auth_middleware.testing import free_port

from .conftest import Redis

pytestmark = pytest.mark.interop

ISSUER, MCP, TICKETS = "https://auth.example.com", "https://mcp.example.com/mcp", "https://tickets.example.com/api"


class Counting(httpx2.ASGITransport):
    calls = 0

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        type(self).calls += 1
        return await super().handle_async_request(request)


def replica(auth_server: LocalAuthorizationServer, storage: str) -> TokenExchange:
    return TokenExchange(
        client_id="mcp-server",
        client_secret="s",
        token_endpoint=f"{ISSUER}/token",
        downstreams={"tickets": Downstream(TICKETS, scopes="tickets:read")},
        cache_storage=storage,
        http_client=httpx2.AsyncClient(transport=Counting(app=auth_server.app)),
    )


@pytest.fixture
def auth_server() -> LocalAuthorizationServer:
    local = LocalAuthorizationServer(ISSUER, scopes_supported=["mcp", "tickets:read"])
    local.register_client(client_id="mcp-server", client_secret="s", grant_types=["client_credentials"])
    local.allow_token_exchange("mcp-server", from_resources=[MCP], to_resources=[TICKETS])
    return local


async def test_two_replicas_share_one_exchange_sealed_by_the_callers_token(
    redis_server: Redis, auth_server: LocalAuthorizationServer
) -> None:
    Counting.calls = 0
    caller_token = auth_server.mint_token(sub="alice", audience=MCP, scopes=["mcp", "tickets:read"])
    caller = AuthInfo("alice", "claude", frozenset({"mcp"}), token=caller_token)
    first, second = replica(auth_server, redis_server.url), replica(auth_server, redis_server.url)
    token = await first.token(caller, "tickets")
    assert await second.token(caller, "tickets") == token
    assert Counting.calls == 1 and second.hits == 1
    redis = RedisClient.from_url(redis_server.url)
    try:
        keys = await redis.keys("mcp-oauth-middleware:exchange:*")
        assert len(keys) == 1
        stored = await redis.get(keys[0])
        ttl = await redis.pttl(keys[0])
    finally:
        await redis.aclose()
    assert stored is not None and token.encode() not in stored and b"tickets" not in stored  # sealed
    caller_hash = hashlib.sha256(caller_token.encode()).hexdigest()
    assert caller_token.encode() not in keys[0] and caller_hash.encode() not in keys[0]
    assert 0 < ttl <= 3600 * 1000  # expires with the entry
    # Another caller cannot open it: the key differs, and so does the sealing key.
    other = AuthInfo(
        "bob", "claude", frozenset(), token=auth_server.mint_token(sub="bob", audience=MCP, scopes=["tickets:read"])
    )
    assert await second.token(other, "tickets") != token
    await first.aclose()
    await second.aclose()


async def test_redis_down_is_a_cache_miss_with_a_warning(
    auth_server: LocalAuthorizationServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    exchange = replica(auth_server, f"redis://127.0.0.1:{free_port()}/0")
    caller = AuthInfo(
        "alice", "claude", frozenset(), token=auth_server.mint_token(sub="alice", audience=MCP, scopes=["tickets:read"])
    )
    token = await exchange.token(caller, "tickets")
    assert await exchange.token(caller, "tickets") == token  # the memory cache still holds it
    assert "shared exchange cache unavailable, exchanging without it" in caplog.text
    await exchange.aclose()
