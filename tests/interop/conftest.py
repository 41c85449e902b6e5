"""Starts and stops the external components the interop tests need.

They are real: oidc-provider (from the npm registry, installed by `make test`) and Redis
(Debian's redis-server). A component that cannot start fails the tests; nothing is skipped.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from joserfc.jwk import RSAKey

from mcp_auth_middleware.testing import free_port

from ..processes import stop_process
from ..processes import wait_for_port as _wait_for_port
from .glewlwyd import Glewlwyd

HERE = Path(__file__).parent
OIDC_DIR = HERE / "oidc_provider"
RESOURCE_JWT = "https://mcp.example.com/mcp"
RESOURCE_OPAQUE = "https://opaque.example.com/mcp"


@dataclass
class OIDCProvider:
    port: int
    keys: list[RSAKey]
    process: subprocess.Popen[bytes] | None = None

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        node = shutil.which("node")
        if node is None:
            pytest.fail("node is not installed: `make test` installs what the interop tests need")
        if not (OIDC_DIR / "node_modules" / "oidc-provider").is_dir():
            pytest.fail(
                "oidc-provider is not installed: run `make test` (it runs npm ci in tests/interop/oidc_provider)"
            )
        env = {
            **os.environ,
            "PORT": str(self.port),
            "RESOURCE_JWT": RESOURCE_JWT,
            "RESOURCE_OPAQUE": RESOURCE_OPAQUE,
            "JWKS": json.dumps({"keys": [k.as_dict(private=True) for k in self.keys]}),
            "NODE_ENV": "test",
        }
        self.process = subprocess.Popen(
            [node, "server.mjs"], cwd=OIDC_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        _wait_for_port(self.port, self.process, "oidc-provider")

    def stop(self) -> None:
        stop_process(self.process)
        self.process = None

    def rotate(self) -> RSAKey:
        """Restart with a new signing key first (the old one stays published, as IdPs do)."""
        new = RSAKey.generate_key(2048, parameters={"kid": f"key-{len(self.keys) + 1}", "use": "sig", "alg": "RS256"})
        self.keys = [new, *self.keys]
        self.stop()
        self.start()
        return new


@pytest.fixture(scope="session")
def oidc_provider() -> Iterator[OIDCProvider]:
    key = RSAKey.generate_key(2048, parameters={"kid": "key-1", "use": "sig", "alg": "RS256"})
    provider = OIDCProvider(free_port(), [key])
    provider.start()
    try:
        yield provider
    finally:
        provider.stop()


@dataclass
class Redis:
    port: int

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"


@pytest.fixture(scope="session")
def redis_server() -> Iterator[Redis]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed: `make test` installs Debian's redis-server")
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    _wait_for_port(port, process, "redis-server")
    try:
        yield Redis(port)
    finally:
        process.terminate()
        process.wait(10)


@pytest.fixture(scope="session")
def glewlwyd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Glewlwyd]:
    server = Glewlwyd(free_port(), tmp_path_factory.mktemp("glewlwyd"))
    try:
        server.start()
        yield server
    finally:
        server.stop()
