"""The broker's records on each storage it offers: SQLite (a file; a second connection to it is
what a second process on the machine would have) and real Redis (two clients: two replicas)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mcp_auth_middleware.broker.storage import Records, SharedRecords, SQLiteRecords

from ..interop.conftest import Redis, redis_server  # noqa: F401 (a fixture)


@pytest.fixture(params=["sqlite", "redis"])
async def two_replicas(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    redis_server: Redis,  # noqa: F811
) -> AsyncIterator[tuple[Records, Records]]:
    if request.param == "sqlite":
        pair: tuple[Records, Records] = (SQLiteRecords(tmp_path / "broker.db"), SQLiteRecords(tmp_path / "broker.db"))
    else:
        pair = (SharedRecords(redis_server.url), SharedRecords(redis_server.url))
    yield pair
    for records in pair:
        await records.aclose()
