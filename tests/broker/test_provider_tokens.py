"""The provider's tokens for a tool: kept sealed, handed out while fresh, refreshed at the real
provider (oidc-provider, Entra-like) when about to expire, once for two replicas asking at once
(real Redis); a provider that refuses the refresh ends the grant, one that is down keeps it."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
import redis.asyncio as redis

from mcp_auth_middleware.broker.provider_tokens import ProviderTokens
from mcp_auth_middleware.broker.sealing import Sealer
from mcp_auth_middleware.broker.storage import Records, SharedRecords
from mcp_auth_middleware.broker.upstream import ProviderError, Upstream, UpstreamGrant
from mcp_auth_middleware.testing import free_port

from ..interop.conftest import Redis
from .conftest import EntraLike, through_the_provider

pytestmark = pytest.mark.interop
SEALER = Sealer(["p" * 43])


async def signed_in(provider: EntraLike) -> tuple[Upstream, UpstreamGrant]:
    upstream = await Upstream.discover(
        provider.issuer, provider.client_id, provider.client_secret, scopes=("openid", "offline_access")
    )
    url, pending = upstream.start(provider.redirect_uri)
    grant = await upstream.finish(await through_the_provider(url, provider.redirect_uri), pending)
    assert grant.refresh_token
    return upstream, grant


async def test_fresh_tokens_are_handed_out_and_expiring_ones_refreshed(
    entra_like: EntraLike, two_replicas: tuple[Records, Records]
) -> None:
    upstream, grant = await signed_in(entra_like)
    tokens = ProviderTokens(two_replicas[0], SEALER, upstream)
    await tokens.keep("g1", grant)
    assert await tokens.access_token("g1") == grant.access_token and tokens.refreshes == 0
    await tokens.keep("g1", dataclasses.replace(grant, expires_at=0))  # about to expire
    refreshed = await tokens.access_token("g1")
    assert refreshed != grant.access_token and tokens.refreshes == 1
    assert await tokens.access_token("g1") == refreshed and tokens.refreshes == 1  # kept


async def test_two_replicas_refresh_once(entra_like: EntraLike, redis_server: Redis) -> None:
    upstream, grant = await signed_in(entra_like)
    other_upstream = await Upstream.discover(entra_like.issuer, entra_like.client_id, entra_like.client_secret)
    one = ProviderTokens(SharedRecords(redis_server.url), SEALER, upstream)
    other = ProviderTokens(SharedRecords(redis_server.url), SEALER, other_upstream)
    await one.keep("g2", dataclasses.replace(grant, expires_at=0))
    handed = await asyncio.gather(*(replica.access_token("g2") for replica in [one, other] * 4))
    assert len(set(handed)) == 1 and handed[0] != grant.access_token
    assert one.refreshes + other.refreshes == 1
    # Sealed where it is kept: neither token readable in Redis.
    client = redis.Redis.from_url(redis_server.url)
    raw = await client.get("mcp-oauth-middleware:broker:provider:g2")
    assert raw and handed[0].encode() not in raw and (grant.refresh_token or "").encode() not in raw
    for closing in (client, one.records, other.records):
        await closing.aclose()


async def test_a_provider_down_keeps_the_grant_a_refusal_ends_it(
    entra_like: EntraLike, two_replicas: tuple[Records, Records]
) -> None:
    upstream, grant = await signed_in(entra_like)
    gone = dict(upstream.metadata) | {"token_endpoint": f"http://127.0.0.1:{free_port()}/token"}
    down = ProviderTokens(two_replicas[0], SEALER, Upstream(gone, "broker", "broker-secret", allow_http=True))
    await down.keep("g3", dataclasses.replace(grant, expires_at=0))
    with pytest.raises(ProviderError, match="cannot be reached") as unreachable:
        await down.access_token("g3")
    assert unreachable.value.unavailable
    # Kept, and the lease released: with the provider back, the next call refreshes.
    back = ProviderTokens(two_replicas[1], SEALER, upstream)
    assert await back.access_token("g3") != grant.access_token
    # A refresh token the provider no longer knows: the grant ends, the user signs in again.
    await back.keep("g4", dataclasses.replace(grant, expires_at=0, refresh_token="revoked-or-unknown"))
    with pytest.raises(ProviderError, match="refused"):
        await back.access_token("g4")
    with pytest.raises(ProviderError, match="Sign in again"):
        await back.access_token("g4")
    with pytest.raises(ProviderError, match="Sign in again"):
        await back.access_token("never-signed-in")
