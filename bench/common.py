"""Helpers shared by the benchmarks: in-process ASGI calls and interleaved, repeated timing."""

from __future__ import annotations

import hashlib
import socket
import statistics
import subprocess
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from mcp_auth_middleware.integrations.mcp import user_context_var

Scope = dict[str, Any]


#: What an MCP client's POST carries besides the token (the TypeScript SDK's, over HTTP/1.1):
#: every middleware walks these to find the Authorization header.
CLIENT_HEADERS: list[tuple[bytes, bytes]] = [
    (b"host", b"mcp.example.com"),
    (b"connection", b"keep-alive"),
    (b"content-type", b"application/json"),
    (b"accept", b"application/json, text/event-stream"),
    (b"mcp-protocol-version", b"2025-11-25"),
    (b"user-agent", b"node"),
    (b"accept-encoding", b"gzip, deflate"),
    (b"content-length", b"98"),
]


def client_headers(token: str, scheme: str = "Bearer") -> list[tuple[bytes, bytes]]:
    """A client's request headers with `Authorization: <scheme> <token>` among them."""
    return [*CLIENT_HEADERS[:5], (b"authorization", f"{scheme} {token}".encode()), *CLIENT_HEADERS[5:]]


def http_scope(path: str = "/mcp", headers: Sequence[tuple[bytes, bytes]] = (), method: str = "POST") -> Scope:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "https",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": list(headers),
        "server": ("mcp.example.com", 443),
        "client": ("127.0.0.1", 50000),
    }


class Call:
    """Calls an ASGI app in-process and records the response status."""

    def __init__(self, app: Any, body: bytes = b"") -> None:
        self.app = app
        self.status = 0
        self._message = {"type": "http.request", "body": body, "more_body": False}

    async def receive(self) -> dict[str, Any]:
        return self._message

    async def send(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]

    async def __call__(self, scope: Scope) -> int:
        # Middleware may write into the scope (state, user): every call gets a fresh copy.
        await self.app(dict(scope, headers=list(scope["headers"])), self.receive, self.send)
        return self.status


async def per_call_us(fn: Callable[[int], Awaitable[None]], n: int) -> float:
    """CPU microseconds per call of `fn(i)` over n calls (CPU time, not wall time: on a
    shared VM, time spent descheduled would otherwise land on whichever variant was running)."""
    started = time.process_time_ns()
    for i in range(n):
        await fn(i)
    return (time.process_time_ns() - started) / n / 1000


async def compare(variants: dict[str, Callable[[int], Awaitable[None]]], n: int, rounds: int) -> dict[str, list[float]]:
    """µs per call for each variant, one sample per round; rounds are interleaved so that
    drift on a shared machine hits every variant alike."""
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for fn in variants.values():  # warm-up
        await per_call_us(fn, max(50, n // 10))
    for _ in range(rounds):
        for name, fn in variants.items():
            samples[name].append(await per_call_us(fn, n))
    return samples


def median(values: list[float]) -> float:
    return statistics.median(values)


def added(samples: dict[str, list[float]], name: str, base: str = "bare") -> float:
    """Median over rounds of (variant - base) in the same round."""
    return statistics.median(a - b for a, b in zip(samples[name], samples[base], strict=True))


def differences(samples: dict[str, list[float]], name: str, base: str = "bare") -> list[float]:
    """Per round: what `name` adds to `base`, both timed in that round."""
    return [a - b for a, b in zip(samples[name], samples[base], strict=True)]


def ratio_summary(numerators: list[float], denominators: list[float]) -> tuple[float, str]:
    """The median over rounds of numerator / denominator, each pair from the same round, and
    the middle half of those per-round ratios (how much the machine moved them). A ratio per
    round cancels the machine's speed in that round, which drifts between rounds."""
    per_round = sorted(n / d for n, d in zip(numerators, denominators, strict=True) if d > 0)
    value = statistics.median(per_round)
    q1, q3 = per_round[len(per_round) // 4], per_round[(3 * len(per_round)) // 4]
    return value, f"{value:.2f}x (rounds: {q1:.2f}-{q3:.2f})"


def verdict(value: float, target: float, aim: float | None = None) -> str:
    met = "met" if value <= target else "NOT met"
    return f"target <= {target}x{f' (aim {aim}x)' if aim else ''}: {met}"


def table(rows: list[tuple[str, ...]], header: tuple[str, ...]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) + " |"  # noqa: E731
    return "\n".join([line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows)])


def hash_lookup_floor(
    app: Any, token: str | None = None, on_miss: Callable[[bytes], Awaitable[Any]] | None = None
) -> Any:
    """The least a cached-token middleware can do: find the header, SHA-256 the token, look it
    up, attach the result and set the context variable. No checks, no challenge, no metrics.
    A token not seen before goes to `on_miss`, whose answer is kept; without it, the
    middleware knows `token` alone."""
    cache = {} if token is None else {hashlib.sha256(token.encode()).digest(): object()}

    async def middleware(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":  # lifespan: the app's own
            await app(scope, receive, send)
            return
        found = b""
        for name, value in scope["headers"]:
            if name == b"authorization":
                found = value[7:]
        key = hashlib.sha256(found).digest()
        info = cache.get(key)
        if info is None:
            assert on_miss is not None, "a token this floor does not know"
            info = cache[key] = await on_miss(found)
        scope.setdefault("state", {})["auth"] = scope["user"] = info
        reset = user_context_var.set(info)
        try:
            await app(scope, receive, send)
        finally:
            user_context_var.reset(reset)

    return middleware


def started(process: subprocess.Popen[bytes], port: int, what: str, timeout: float = 30.0) -> subprocess.Popen[bytes]:
    """`process`, once it listens on 127.0.0.1:`port`; RuntimeError (with its stderr) if it exits
    or never does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(process.stderr.read().decode() if process.stderr else f"{what} exited")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return process
        time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"{what} did not start")
