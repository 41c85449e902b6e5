"""Records the broker keeps (refresh-token families, sealed provider grants), each a JSON object
with an expiry, changed atomically: `change(old) -> (new, result)` runs with no other writer in
between, on this process or another. `SQLiteRecords` is the default, on one machine (a file:
it survives a restart); `SharedRecords` is Redis or Valkey, for replicas."""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar

from ..shared_storage import connect

__all__ = [
    "Change",
    "Records",
    "SQLiteRecords",
    "SharedRecords",
    "StorageUnavailableError",
    "hashed_key",
    "open_records",
    "until",
]

T = TypeVar("T")
Record = dict[str, Any]
#: What an update does to a record: given it (None when absent or expired), the record to keep
#: (None deletes it) and what the update returns.
Change = Callable[[Record | None], tuple[Record | None, T]]
#: How long the record kept lives: seconds, or seconds from the record itself (an expiry it holds).
TTL = float | Callable[[Record], float]


class StorageUnavailableError(RuntimeError):
    """The records cannot be read or written now (the broker answers 503, never a guess)."""


class Records(Protocol):
    async def get(self, key: str) -> Record | None: ...

    async def update(self, key: str, change: Change[T], ttl: TTL) -> T:
        """Apply `change` atomically; the record kept expires `ttl` seconds from now. `change`
        may run more than once (again when another writer came first): no side effects in it."""
        ...

    async def aclose(self) -> None: ...


def open_records(uri: str) -> Records:
    """`sqlite:///var/lib/mcp/broker.db` (or a path), `redis://...`, `valkey://...`."""
    if uri.startswith(("redis", "rediss", "valkey", "unix", "async+")):
        return SharedRecords(uri)
    return SQLiteRecords(uri.removeprefix("sqlite://"))


class SQLiteRecords:
    """In one SQLite file. Each update is one `BEGIN IMMEDIATE` transaction: atomic between
    threads and between processes on the machine (WAL, so readers do not wait)."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=10)
        self._lock = threading.Lock()  # one connection: one statement at a time
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS records (key TEXT PRIMARY KEY, value TEXT NOT NULL, expires REAL NOT NULL)"
            )
            # Each update deletes what expired: by this index, not by reading the whole table.
            self._db.execute("CREATE INDEX IF NOT EXISTS records_expires ON records (expires)")

    async def get(self, key: str) -> Record | None:
        return await asyncio.to_thread(self._get, key)

    def _get(self, key: str) -> Record | None:
        with self._lock:
            row = self._db.execute("SELECT value, expires FROM records WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row and row[1] > time.time() else None

    async def update(self, key: str, change: Change[T], ttl: TTL) -> T:
        return await asyncio.to_thread(self._update, key, change, ttl)

    def _update(self, key: str, change: Change[T], ttl: TTL) -> T:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:  # locked by another process for too long
                raise StorageUnavailableError(f"broker records {self.path}: {exc}") from None
            try:
                now = time.time()
                row = self._db.execute("SELECT value, expires FROM records WHERE key = ?", (key,)).fetchone()
                new, result = change(json.loads(row[0]) if row and row[1] > now else None)
                if new is None:
                    self._db.execute("DELETE FROM records WHERE key = ?", (key,))
                else:
                    self._db.execute(
                        "INSERT OR REPLACE INTO records (key, value, expires) VALUES (?, ?, ?)",
                        (key, json.dumps(new, separators=(",", ":")), now + _seconds(ttl, new)),
                    )
                self._db.execute("DELETE FROM records WHERE expires <= ?", (now,))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return result

    async def aclose(self) -> None:
        with self._lock:
            self._db.close()


class SharedRecords:
    """In Redis or Valkey: an update reads under `WATCH` and writes in `MULTI`, again if another
    replica wrote the record in between (optimistic: no lock held across the network)."""

    _PREFIX = "mcp-oauth-middleware:broker:"

    def __init__(self, uri: str, *, attempts: int = 50) -> None:
        self._client, self._errors = connect(uri, "the broker's shared records")
        self._attempts = attempts

    async def get(self, key: str) -> Record | None:
        try:
            value = await self._client.get(self._PREFIX + key)
        except self._errors as exc:
            raise StorageUnavailableError(f"broker records: {type(exc).__name__}: {exc}") from None
        return json.loads(value) if value else None

    async def update(self, key: str, change: Change[T], ttl: TTL) -> T:
        name = self._PREFIX + key
        conflict = _watch_error(self._client)
        try:
            for _ in range(self._attempts):
                async with self._client.pipeline(transaction=True) as pipe:
                    try:
                        await pipe.watch(name)
                        value = await pipe.get(name)
                        new, result = change(json.loads(value) if value else None)
                        pipe.multi()
                        if new is None or (seconds := _seconds(ttl, new)) <= 0:
                            pipe.delete(name)
                        else:
                            pipe.set(name, json.dumps(new, separators=(",", ":")), px=max(1, int(seconds * 1000)))
                        await pipe.execute()
                        return result
                    except conflict:
                        continue  # another replica changed it: read it again
        except self._errors as exc:
            raise StorageUnavailableError(f"broker records: {type(exc).__name__}: {exc}") from None
        raise StorageUnavailableError(f"broker records: {key} kept changing ({self._attempts} attempts)")

    async def aclose(self) -> None:
        await self._client.aclose()


def hashed_key(kind: str, *parts: str) -> str:
    """The key of a record named by values a client holds (a code, a sign-in, a browser): only
    their hash is stored, so the records do not hold what would redeem them."""
    return f"broker:{kind}:{hashlib.sha256(chr(0).join(parts).encode()).hexdigest()}"


def until(record: Record) -> float:
    """The TTL of a record that holds its own expiry, `until` (epoch seconds): a change that
    keeps the record unchanged does not extend it."""
    return float(record["until"]) - time.time()


def _seconds(ttl: TTL, record: Record) -> float:
    return ttl(record) if callable(ttl) else ttl


def _watch_error(client: Any) -> type[Exception]:
    module = type(client).__module__.split(".", 1)[0]  # redis or valkey
    exceptions = __import__(f"{module}.exceptions", fromlist=["WatchError"])
    error: type[Exception] = exceptions.WatchError
    return error
