"""The provider's tokens for a signed-in user, kept sealed where the broker keeps its records, and
handed to a tool that calls the provider's own APIs (Graph, Google APIs): `await
tokens.access_token(grant_id)`, refreshed first when it is about to expire. They never reach an
MCP client. Replicas refresh once between them: the first to claim the refresh (an atomic lease
in the records) asks the provider, the others wait for what it stores. Providers that rotate
refresh tokens (Entra, Okta) would otherwise see one reused and may end the user's session."""

from __future__ import annotations

import asyncio
import time
import weakref
from dataclasses import dataclass
from typing import Any

from .sealing import Sealer, SealError
from .storage import Record, Records, until
from .upstream import ProviderError, Upstream, UpstreamGrant

__all__ = ["ProviderTokens"]


@dataclass(frozen=True)
class _Claim:
    token: str | None  # a usable access token (no refresh needed)
    refresh_token: str | None  # ours to refresh with (we hold the lease)


class ProviderTokens:
    """`keep(grant_id, grant)` at sign-in; `access_token(grant_id)` from a tool; `forget(grant_id)`."""

    def __init__(
        self,
        records: Records,
        sealer: Sealer,
        upstream: Upstream,
        *,
        lifetime: float = 30 * 86400,
        margin: float = 60.0,
        lease: float = 30.0,
    ) -> None:
        self.records, self.sealer, self.upstream = records, sealer, upstream
        self.lifetime, self.margin, self.lease = lifetime, margin, lease
        self.refreshes = 0  # provider refreshes this instance made (observable in tests)
        #: One lock per grant being asked for, gone when no call holds it.
        self._local: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    async def keep(self, grant_id: str, grant: UpstreamGrant) -> None:
        sealed = self._sealed(grant_id, grant.access_token, grant.refresh_token, grant.expires_at)

        def store(old: Record | None) -> tuple[Record | None, None]:
            return sealed | {"until": time.time() + self.lifetime}, None

        await self.records.update(_key(grant_id), store, until)

    async def forget(self, grant_id: str) -> None:
        await self.records.update(_key(grant_id), lambda old: (None, None), 0)

    async def access_token(self, grant_id: str) -> str:
        """The provider's access token for this grant; ProviderError when the user must sign in
        again (no grant, or the provider refused the refresh) or the provider is down."""
        lock = self._local.setdefault(grant_id, asyncio.Lock())
        async with lock:  # one refresh per process; the lease makes it one per deployment
            for _ in range(int(self.lease / 0.05) + 20):
                claim = await self._claim(grant_id)
                if claim.token is not None:
                    return claim.token
                if claim.refresh_token is not None:
                    return await self._refresh(grant_id, claim.refresh_token)
                await asyncio.sleep(0.05)  # another replica is refreshing: wait for what it stores
        raise ProviderError("The provider cannot be reached; try again later", "refresh lease never released")

    async def _claim(self, grant_id: str) -> _Claim:
        now = time.time()

        def claim(old: Record | None) -> tuple[Record | None, _Claim]:
            if old is None:
                raise ProviderError("Sign in again", f"no provider grant {grant_id!r} (expired or signed out)")
            try:
                opened = self.sealer.open(old["tokens"], grant_id)
            except SealError:  # sealed with a secret no longer configured: as if signed out
                raise ProviderError(
                    "Sign in again", "the provider's tokens were sealed with a retired secret"
                ) from None
            expires_at = opened.get("expires_at")
            if expires_at is None or expires_at - self.margin > now:
                return old, _Claim(opened["access_token"], None)
            if old.get("refreshinguntil", 0) > now:
                return old, _Claim(None, None)  # someone else holds the lease
            if not opened.get("refresh_token"):
                raise ProviderError("Sign in again", "the provider's token expired and it gave no refresh token")
            return old | {"refreshinguntil": now + self.lease}, _Claim(None, opened["refresh_token"])

        result: _Claim = await self.records.update(_key(grant_id), claim, until)
        return result

    async def _refresh(self, grant_id: str, refresh_token: str) -> str:
        self.refreshes += 1
        try:
            grant = await self.upstream.refresh(refresh_token)
        except ProviderError as exc:
            if exc.unavailable:  # release the lease: a later call tries again
                await self.records.update(_key(grant_id), _release, until)
            else:  # refused: the grant is over, the user signs in again
                await self.forget(grant_id)
            raise
        sealed = self._sealed(grant_id, grant.access_token, grant.refresh_token, grant.expires_at)

        def store(old: Record | None) -> tuple[Record | None, None]:
            return (None if old is None else {**old, **sealed, "refreshinguntil": 0}), None

        await self.records.update(_key(grant_id), store, until)
        return grant.access_token

    def _sealed(self, grant_id: str, access: str, refresh: str | None, expires_at: float | None) -> dict[str, Any]:
        tokens = {"access_token": access, "refresh_token": refresh, "expires_at": expires_at}
        return {"tokens": self.sealer.seal(tokens, grant_id)}


def _release(old: Record | None) -> tuple[Record | None, None]:
    return (None if old is None else old | {"refreshinguntil": 0}), None


def _key(grant_id: str) -> str:
    return f"provider:{grant_id}"
