"""The token-guessing guard shared by replicas through a real Redis (issue: hardening and scale-out)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx2
import pytest

from mcp_auth_middleware.server import LocalAuthorizationServer
from mcp_auth_middleware.testing import free_port, running_authorization_server

from .conftest import Redis, _wait_for_port

pytestmark = pytest.mark.interop

ROOT = Path(__file__).resolve().parents[2]
RESOURCE = "https://mcp.example.com/mcp"
GUESSER, HONEST = "203.0.113.7", "198.51.100.1"


@contextmanager
def replica(issuer: str, storage: str, limit: str = "5/minute", **variables: str) -> Iterator[tuple[str, Path]]:
    """A separate uvicorn process running the middleware; yields its URL and log file."""
    port = free_port()
    log = Path(os.environ.get("TMPDIR", "/tmp")) / f"replica-{port}.log"
    env = {
        **os.environ,
        "MCP_AUTH_RESOURCE": RESOURCE,
        "MCP_AUTH_ISSUER": issuer,
        "MCP_AUTH_FAILURE_LIMIT": limit,
        "MCP_AUTH_RATE_LIMIT_STORAGE": storage,
        "MCP_AUTH_TRUSTED_PROXIES": "127.0.0.1/32",
        "PYTHONPATH": str(ROOT),
        **variables,
    }
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "tests.interop.replica_app:app",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--log-level",
                "warning",
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
        try:
            _wait_for_port(port, process, "replica")
            yield f"http://127.0.0.1:{port}/mcp", log
        finally:
            process.terminate()
            process.wait(10)


def post(url: str, token: str, address: str) -> int:
    response = httpx2.post(url, headers={"Authorization": f"Bearer {token}", "X-Forwarded-For": address}, timeout=10)
    return response.status_code


@pytest.fixture(scope="module")
def issuer() -> Iterator[LocalAuthorizationServer]:
    with running_authorization_server() as server:
        yield server


def test_two_replicas_share_the_limit(issuer: LocalAuthorizationServer, redis_server: Redis) -> None:
    storage = f"redis://127.0.0.1:{redis_server.port}/0"
    good = issuer.mint_token(sub="honest", audience=RESOURCE)
    with replica(issuer.issuer, storage) as (a, _), replica(issuer.issuer, storage) as (b, _):
        # Successes are never counted: many valid requests from the honest address.
        assert [post(url, good, HONEST) for url in (a, b) * 10] == [200] * 20
        statuses = [post(url, f"guess-{i}", GUESSER) for i, url in enumerate((a, b) * 6)]
        failures_before_block = statuses.index(429)
        # Shared limit 5, plus at most one first attempt per replica before it knows the suspect.
        assert 5 <= failures_before_block <= 7, statuses
        assert statuses[-2:] == [429, 429]  # both replicas now refuse the guesser
        assert post(a, "guess-again", GUESSER) == 429
        assert post(a, good, GUESSER) == 200  # a valid token is never refused for earlier failures
        assert post(b, good, HONEST) == 200  # other callers are unaffected


def test_redis_down_fails_open_for_valid_tokens(issuer: LocalAuthorizationServer) -> None:
    binary = shutil.which("redis-server")
    assert binary is not None, "redis-server is not installed: run `make test`"
    port = free_port()
    redis = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", ""],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _wait_for_port(port, redis, "redis-server")
    good = issuer.mint_token(sub="honest", audience=RESOURCE)
    with replica(issuer.issuer, f"redis://127.0.0.1:{port}/0") as (url, log):
        assert post(url, good, HONEST) == 200
        assert post(url, "guess", GUESSER) == 401
        redis.terminate()
        redis.wait(10)
        time.sleep(0.2)
        assert [post(url, good, HONEST) for _ in range(5)] == [200] * 5
        assert [post(url, f"guess-{i}", GUESSER) for i in range(8)] == [401] * 8  # no 500, no 429
        time.sleep(0.2)
        assert "rate-limit storage unavailable" in log.read_text()
