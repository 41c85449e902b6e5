"""Refresh-token rotation with reuse detection (RFC 9700 §4.14.2) on SQLite and on real Redis,
from two replicas: a rotation, the same token refreshed at once on both (one successor, nobody
logged out), a retired token replayed after the grace window (the family revoked), a restart in
between, another client's use, revocation (RFC 7009 §2.1)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from mcp_auth_middleware.broker.refresh_tokens import RefreshTokens
from mcp_auth_middleware.broker.sealing import Sealer
from mcp_auth_middleware.broker.storage import Records, SQLiteRecords

SEALER = Sealer(["s" * 43])
GRANT = {"client_id": "claude", "sub": "alice", "scope": "mcp", "resource": "https://mcp.example.com/mcp"}


def replicas(pair: tuple[Records, Records], grace: float = 10.0) -> tuple[RefreshTokens, RefreshTokens]:
    return RefreshTokens(pair[0], SEALER, grace=grace), RefreshTokens(pair[1], SEALER, grace=grace)


async def test_a_refresh_on_one_replica_then_the_other(two_replicas: tuple[Records, Records]) -> None:
    one, other = replicas(two_replicas)
    first = await one.issue(GRANT)
    second = await one.rotate(first, "claude")
    assert second.token and second.token != first and second.grant == GRANT
    third = await other.rotate(second.token, "claude")
    assert third.token and third.token not in (first, second.token) and third.grant == GRANT


async def test_concurrent_refreshes_of_one_token_get_one_successor(two_replicas: tuple[Records, Records]) -> None:
    """Two replicas (and a client's retries) refreshing the same token at once: within the grace
    window all get the same new token, and the family stays valid."""
    one, other = replicas(two_replicas)
    token = await one.issue(GRANT)
    rotations = await asyncio.gather(*(replica.rotate(token, "claude") for replica in [one, other] * 5))
    successors = {rotation.token for rotation in rotations}
    assert len(successors) == 1 and None not in successors, [r.problem for r in rotations]
    (successor,) = successors
    assert successor is not None
    assert (await other.rotate(successor, "claude")).token  # not revoked


async def test_a_retired_token_replayed_after_the_grace_revokes_the_family(
    two_replicas: tuple[Records, Records],
) -> None:
    one, other = replicas(two_replicas, grace=0.2)
    stolen = await one.issue(GRANT)
    legitimate = (await one.rotate(stolen, "claude")).token
    assert legitimate
    await asyncio.sleep(0.4)
    replay = await other.rotate(stolen, "claude")
    assert replay.token is None and replay.problem and "reused" in replay.problem
    # The whole family is gone: the legitimate holder's token too (RFC 9700 §4.14.2).
    after = await one.rotate(legitimate, "claude")
    assert after.token is None and after.problem == "its family was revoked"


async def test_a_restart_between_refreshes_loses_nothing(tmp_path: Path) -> None:
    before = RefreshTokens(SQLiteRecords(tmp_path / "broker.db"), SEALER)
    token = await before.issue(GRANT)
    rotated = (await before.rotate(token, "claude")).token
    await before.records.aclose()
    after = RefreshTokens(SQLiteRecords(tmp_path / "broker.db"), SEALER)
    assert (await after.rotate(token, "claude")).token == rotated  # within the grace: the same one
    assert rotated and (await after.rotate(rotated, "claude")).token
    await after.records.aclose()


async def test_what_is_refused_without_revoking(two_replicas: tuple[Records, Records]) -> None:
    one, _ = replicas(two_replicas)
    token = await one.issue(GRANT)
    family = token.split(".")[0]
    assert (await one.rotate(token, "cursor")).problem == "issued to another client"  # RFC 6749 §6
    assert (await one.rotate(f"{family}.guessed", "claude")).problem == "unknown"
    assert (await one.rotate("nofamily.secret", "claude")).problem == "unknown or expired"
    assert (await one.rotate("no-dot", "claude")).problem == "not a refresh token"
    assert (await one.rotate(token, "claude")).token  # none of those touched the family


async def test_revoking_a_token_revokes_its_family(two_replicas: tuple[Records, Records]) -> None:
    one, other = replicas(two_replicas)
    token = await one.issue(GRANT)
    rotated = (await one.rotate(token, "claude")).token
    assert rotated
    await other.revoke(f"{token.split('.')[0]}.not-its-secret")  # not a token of it: nothing
    assert (await one.rotate(rotated, "claude")).token
    await other.revoke(token)  # a retired token of the family still names the grant
    refused = await one.rotate(rotated, "claude")
    assert refused.token is None and refused.problem == "its family was revoked"


def every_byte_of(directory: Path) -> bytes:
    """The database and its journal (WAL) files."""
    return b"".join(path.read_bytes() for path in sorted(directory.glob("broker.db*")))


async def test_only_hashes_and_sealed_values_are_stored(tmp_path: Path) -> None:
    tokens = RefreshTokens(SQLiteRecords(tmp_path / "broker.db"), SEALER)
    first = await tokens.issue(GRANT)
    second = (await tokens.rotate(first, "claude")).token
    await tokens.records.aclose()
    stored = every_byte_of(tmp_path)
    assert second
    for secret in (first.split(".")[1], second.split(".")[1]):
        assert secret.encode() not in stored
