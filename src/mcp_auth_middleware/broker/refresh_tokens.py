"""Refresh tokens rotated with reuse detection (RFC 9700 §4.14.2; OAuth 2.1 §4.3.1): each use
returns a new token and retires the old one; a retired token presented again means one of the
two holders is not the client, so the whole family (every token descended from one sign-in) is
revoked. One exception keeps honest clients signed in: the token just retired, presented again
within `grace` seconds (two replicas, or a client's two tabs, refreshing at once, or an answer
lost on the way), gets the same successor the first use got, not a second one.

Only hashes of tokens are stored; the successor, kept for the grace window, is sealed."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Any

from .sealing import Sealer, SealError
from .storage import Record, Records, until

__all__ = ["RefreshTokens", "Rotation"]

_RETIRED_KEPT = 50  # retired hashes remembered per family (reuse of an older one: unknown, not revoked)


@dataclass(frozen=True)
class Rotation:
    """A refresh: the new token and the grant it carries, or why not (`problem`, for the log;
    the client gets `invalid_grant` either way, RFC 6749 §5.2)."""

    token: str | None = None
    grant: dict[str, Any] | None = None
    problem: str | None = None


class RefreshTokens:
    """`issue(grant)` at sign-in; `rotate(token, client_id)` at each refresh; `revoke(token)`."""

    def __init__(self, records: Records, sealer: Sealer, *, lifetime: float = 30 * 86400, grace: float = 10.0) -> None:
        self.records, self.sealer = records, sealer
        self.lifetime, self.grace = lifetime, grace

    async def issue(self, grant: dict[str, Any]) -> str:
        """A new family for `grant` (its `client_id`, subject, scopes, resource), and its first token."""
        family, secret = secrets.token_urlsafe(16), secrets.token_urlsafe(32)

        def create(old: Record | None) -> tuple[Record | None, None]:
            record = {"grant": grant, "current": _hash(secret), "retired": [], "revoked": False}
            return record | {"until": time.time() + self.lifetime}, None

        await self.records.update(_key(family), create, until)
        return f"{family}.{secret}"

    async def rotate(self, token: str, client_id: str) -> Rotation:
        family, _, secret = token.partition(".")
        if not family or not secret:
            return Rotation(problem="not a refresh token")
        presented, now = _hash(secret), time.time()
        successor = secrets.token_urlsafe(32)

        def use(old: Record | None) -> tuple[Record | None, Rotation]:
            if old is None:
                return None, Rotation(problem="unknown or expired")
            if old["revoked"]:
                return old, Rotation(problem="its family was revoked")
            if not hmac.compare_digest(str(old["grant"].get("client_id")), client_id):
                return old, Rotation(problem="issued to another client")  # RFC 6749 §6
            if hmac.compare_digest(old["current"], presented):
                token = f"{family}.{successor}"
                new = old | {
                    "current": _hash(successor),
                    "retired": [presented, *old["retired"]][:_RETIRED_KEPT],
                    "rotated_at": now,
                    "successor": self.sealer.seal(token, family),
                    "until": now + self.lifetime,  # sliding: a family in use stays
                }
                return new, Rotation(token, old["grant"])
            retired = old["retired"]
            if retired and hmac.compare_digest(retired[0], presented) and now - old["rotated_at"] <= self.grace:
                try:
                    return old, Rotation(self.sealer.open(old["successor"], family), old["grant"])  # the same one
                except SealError:  # the secrets were rotated in between: the client signs in again
                    return old, Rotation(problem="its successor was sealed with a retired secret")
            if any(hmac.compare_digest(h, presented) for h in retired):
                return old | {"revoked": True}, Rotation(problem="reused after rotation: the family is revoked")
            return old, Rotation(problem="unknown")

        rotation: Rotation = await self.records.update(_key(family), use, until)
        return rotation

    async def revoke(self, token: str, client_id: str | None = None) -> dict[str, Any] | None:
        """RFC 7009 §2.1: revoking a refresh token revokes its family (every token of the grant),
        when it was issued to `client_id` (if given). The grant it carried, or None."""
        family, _, secret = token.partition(".")

        def revoke(old: Record | None) -> tuple[Record | None, dict[str, Any] | None]:
            if old is None or not any(hmac.compare_digest(h, _hash(secret)) for h in [old["current"], *old["retired"]]):
                return old, None  # not a token of this family: nothing (RFC 7009 §2.2: still 200)
            if client_id is not None and not hmac.compare_digest(str(old["grant"].get("client_id")), client_id):
                return old, None  # another client's token: not revoked by this one
            return old | {"revoked": True}, old["grant"]

        if not family or not secret:
            return None
        grant: dict[str, Any] | None = await self.records.update(_key(family), revoke, until)
        return grant

    async def revoke_family(self, family: str) -> dict[str, Any] | None:
        """Every token of one family (its access tokens name it as `sid`); the grant, or None."""

        def revoke(old: Record | None) -> tuple[Record | None, dict[str, Any] | None]:
            return (None, None) if old is None else (old | {"revoked": True}, old["grant"])

        grant: dict[str, Any] | None = await self.records.update(_key(family), revoke, until)
        return grant

    async def grant_of(self, family: str) -> dict[str, Any] | None:
        """The grant of a family still in force (not revoked, not expired), or None."""
        record = await self.records.get(_key(family)) if family else None
        return None if record is None or record["revoked"] else dict(record["grant"])

    @staticmethod
    def family_of(token: str) -> str:
        return token.partition(".")[0]


def _key(family: str) -> str:
    return f"refresh:{family}"


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()
