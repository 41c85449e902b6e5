"""The broker's records on each storage it offers: SQLite (a file; a second connection to it is
what a second process on the machine would have) and real Redis (two clients: two replicas)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urljoin, urlsplit

import httpx2
import pytest
from joserfc.jwk import RSAKey

from mcp_auth_middleware.broker.storage import Records, SharedRecords, SQLiteRecords
from mcp_auth_middleware.testing import free_port

from ..interop.conftest import OIDC_DIR, Redis, redis_server  # noqa: F401 (a fixture)
from ..processes import stop_process, wait_for_port


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


@dataclass
class EntraLike:
    """node oidc-provider as an Entra-like provider (tests/interop/oidc_provider/entra_like.mjs)."""

    port: int
    redirect_uri: str
    client_id: str = "broker"
    client_secret: str = "broker-secret"

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture(scope="session")
def entra_like() -> Iterator[EntraLike]:
    node = shutil.which("node")
    if node is None or not (OIDC_DIR / "node_modules" / "oidc-provider").is_dir():
        pytest.fail("node and oidc-provider are needed: `make test` installs them (tests/interop/oidc_provider)")
    provider = EntraLike(free_port(), f"http://127.0.0.1:{free_port()}/oauth/callback")
    key = RSAKey.generate_key(2048, parameters={"kid": "entra-1", "use": "sig", "alg": "RS256"})
    env = {
        **os.environ,
        "PORT": str(provider.port),
        "REDIRECT_URI": provider.redirect_uri,
        "JWKS": json.dumps({"keys": [key.as_dict(private=True)]}),
        "NODE_ENV": "test",
    }
    process = subprocess.Popen(
        [node, "entra_like.mjs"], cwd=OIDC_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    wait_for_port(provider.port, process, "oidc-provider (Entra-like)")
    try:
        yield provider
    finally:
        stop_process(process)


async def through_the_provider(url: str, redirect_uri: str, *, deny: bool = False) -> dict[str, str]:
    """A browser at the provider: its login page (any login), its consent page (Continue, or the
    cancel link), until it sends the browser back to `redirect_uri`; the callback's parameters."""
    async with httpx2.AsyncClient(timeout=10, follow_redirects=False) as browser:
        response = await browser.get(url)
        for _ in range(10):
            location = response.headers.get("location")
            if location:
                target = urljoin(str(response.url), location)
                if target.startswith(redirect_uri):
                    return dict(parse_qsl(urlsplit(target).query))
                response = await browser.get(target)
                continue
            assert response.status_code == 200, response.text[:500]
            page = str(response.url)
            if deny:
                response = await browser.get(f"{page}/abort")
            elif 'name="login"' in response.text:
                response = await browser.post(page, data={"prompt": "login", "login": "alice", "password": "any"})
            else:
                response = await browser.post(page, data={"prompt": "consent"})
    raise AssertionError("the provider never sent the browser back")
