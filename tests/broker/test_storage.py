"""Records changed atomically by two writers at once (two SQLite connections, two Redis clients):
no update lost; expiry; a restart keeps them; an unreachable Redis is StorageUnavailableError."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from mcp_auth_middleware.broker.storage import (
    Records,
    SharedRecords,
    SQLiteRecords,
    StorageUnavailableError,
    open_records,
)
from mcp_auth_middleware.testing import free_port


def count(record: dict[str, Any] | None) -> tuple[dict[str, Any], int]:
    seen = (record or {"n": 0})["n"] + 1
    return {"n": seen}, seen


async def test_concurrent_updates_from_two_writers_lose_nothing(two_replicas: tuple[Records, Records]) -> None:
    first, second = two_replicas
    results = await asyncio.gather(*(records.update("counter", count, 60) for records in [first, second] * 25))
    assert sorted(results) == list(range(1, 51))  # each saw the one before it: none lost, none twice
    assert await first.get("counter") == {"n": 50} == await second.get("counter")


async def test_a_record_expires_and_a_change_can_delete(two_replicas: tuple[Records, Records]) -> None:
    records, _ = two_replicas
    await records.update("short", lambda old: ({"v": 1}, None), 0.3)
    await records.update("kept", lambda old: ({"v": 2}, None), lambda record: 60.0)
    assert await records.get("short") == {"v": 1}
    await asyncio.sleep(0.5)
    assert await records.get("short") is None
    assert await records.update("short", lambda old: (old, old), 60) is None  # absent to a change too
    await records.update("kept", lambda old: (None, None), 60)
    assert await records.get("kept") is None


async def test_sqlite_records_survive_a_restart(tmp_path: Path) -> None:
    records = open_records(f"sqlite://{tmp_path}/state/broker.db")
    assert isinstance(records, SQLiteRecords)
    await records.update("family", lambda old: ({"current": "h1"}, None), 3600)
    await records.aclose()
    again = open_records(str(tmp_path / "state" / "broker.db"))
    assert await again.get("family") == {"current": "h1"}
    await again.aclose()


async def test_a_change_that_fails_writes_nothing(two_replicas: tuple[Records, Records]) -> None:
    records, _ = two_replicas
    await records.update("k", lambda old: ({"v": 1}, None), 60)

    def broken(old: dict[str, Any] | None) -> tuple[dict[str, Any], None]:
        raise KeyError("a bug in a change")

    with pytest.raises(KeyError):
        await records.update("k", broken, 60)
    assert await records.get("k") == {"v": 1}
    assert await records.update("k", lambda old: ({"v": 2}, "ok"), 60) == "ok"  # still usable


async def test_unreachable_redis_is_unavailable_not_empty() -> None:
    records = SharedRecords(f"redis://127.0.0.1:{free_port()}")
    with pytest.raises(StorageUnavailableError, match="broker records"):
        await records.get("k")
    with pytest.raises(StorageUnavailableError, match="broker records"):
        await records.update("k", count, 60)
    await records.aclose()


def test_unknown_storage_is_refused() -> None:
    with pytest.raises(ValueError, match="must be redis://"):
        SharedRecords("memcached://127.0.0.1:11211")
