"""Two replicas of the service (the `mcp-oauth-middleware gateway` command, configured by its
variables) behind real nginx, sharing one real Redis: the guard against token guessing and the
DPoP replay check hold across them. nginx alternates between them (round robin, one worker);
its access log records which replica decided each request, so the tests see that they did."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx2
import pytest
import redis.asyncio as redis
from joserfc.jwk import ECKey

from mcp_auth_middleware.exchange.proofs import ProofMaker
from mcp_auth_middleware.server.local import LocalAuthorizationServer
from mcp_auth_middleware.testing import free_port, running_authorization_server, serve

from ..interop.conftest import Redis, redis_server  # noqa: F401 (a fixture)
from .conftest import _process, modern_call, nginx, upstream_app

pytestmark = pytest.mark.end_to_end

CLI = str(Path(sys.executable).with_name("mcp-oauth-middleware"))
#: Which replica decided: nginx keeps the auth subrequest's upstream address past its redirects.
REPLICA_LOG = "    auth_request_set $auth_replica $upstream_addr;\n"


@dataclass
class Fleet:
    resource: str
    authorization_server: LocalAuthorizationServer
    replicas: list[str]
    log: Path
    #: What each replica's command printed.
    outputs: list[Path]

    def deciders(self) -> list[str]:
        """The replica of each request so far, in order."""
        return [line.split()[-1] for line in self.log.read_text().splitlines() if line.split()[-1] != "-"]


@pytest.fixture(scope="module")
def fleet(redis_server: Redis, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:  # noqa: F811
    directory = tmp_path_factory.mktemp("replicas")
    port = free_port()
    resource = f"http://127.0.0.1:{port}/mcp"
    with ExitStack() as stack:
        server = stack.enter_context(
            running_authorization_server(scopes_supported=["mcp", "notes:delete"], default_resource=resource)
        )
        upstream = stack.enter_context(serve(upstream_app()))
        ports = [free_port(), free_port()]
        for number, replica_port in enumerate(ports):
            env = {
                **os.environ,
                "MCP_AUTH_GATEWAY": "nginx",
                "MCP_AUTH_RESOURCE": resource,
                "MCP_AUTH_ISSUER": server.issuer,
                "MCP_AUTH_FAILURE_LIMIT": "3/minute",
                "MCP_AUTH_RATE_LIMIT_STORAGE": redis_server.url,
                "MCP_AUTH_DPOP": "1",
            }
            # The per-tool rule by variable on one replica and by flag on the other: both are read.
            rule = ["--tool-scope", "delete_notes=notes:delete"] if number else []
            env |= {} if number else {"MCP_AUTH_TOOL_SCOPES": "delete_notes=notes:delete"}
            command = [CLI, "gateway", "--port", str(replica_port), "--scope", "mcp", *rule]
            stack.enter_context(_process(command, replica_port, "the service", directory / f"{number}.log", env=env))
        log = directory / "replica.log"
        http_level = f"    log_format replica '$status $auth_replica';\n    access_log {log} replica;\n"
        stack.enter_context(
            nginx(directory, port, ports, int(upstream.rsplit(":", 1)[1]), extra=REPLICA_LOG, http_level=http_level)
        )
        outputs = [directory / f"{number}.log" for number in range(len(ports))]
        yield Fleet(resource, server, [f"127.0.0.1:{p}" for p in ports], log, outputs)


def whoami(tool: str = "whoami") -> tuple[dict[str, str], str]:
    return modern_call(tool)


async def test_each_replica_has_the_per_tool_rule_from_its_variable_or_its_flag(fleet: Fleet) -> None:
    narrow = fleet.authorization_server.mint_token(sub="alice", audience=fleet.resource, scopes=["mcp"])
    wide = fleet.authorization_server.mint_token(sub="alice", audience=fleet.resource, scopes=["mcp", "notes:delete"])
    headers, body = whoami("delete_notes")
    before = len(fleet.deciders())
    async with httpx2.AsyncClient(timeout=20) as http:
        denied = [
            await http.post(fleet.resource, content=body, headers={**headers, "Authorization": f"Bearer {narrow}"})
            for _ in range(2)
        ]
        allowed = await http.post(fleet.resource, content=body, headers={**headers, "Authorization": f"Bearer {wide}"})
    assert set(fleet.deciders()[before : before + 2]) == set(fleet.replicas)  # one denial from each
    for response in denied:
        assert response.status_code == 403
        assert 'error="insufficient_scope"' in response.headers["www-authenticate"]
        assert "notes:delete" in response.headers["www-authenticate"]
    assert allowed.status_code == 200, allowed.text
    # Each replica said the rules in force when it started, and logged its denial (INFO, the
    # command's default level).
    for output in fleet.outputs:
        text = output.read_text()
        assert "required scopes: mcp, per tool: delete_notes=notes:delete" in text
        assert "without MCP headers: refuse; log level info" in text
        assert "auth deny 403 POST /mcp: The access token lacks a required scope: scope notes:delete missing" in text


async def test_a_replayed_dpop_proof_is_refused_by_the_other_replica(fleet: Fleet) -> None:
    maker = ProofMaker(ECKey.generate_key("P-256", private=True))
    token = fleet.authorization_server.mint_token(sub="dora", audience=fleet.resource, dpop_jkt=maker.thumbprint)
    headers, body = whoami()
    proof = maker.proof("POST", fleet.resource, token)
    before = len(fleet.deciders())
    async with httpx2.AsyncClient(timeout=20) as http:
        first = await http.post(
            fleet.resource, content=body, headers={**headers, "Authorization": f"DPoP {token}", "DPoP": proof}
        )
        replayed = await http.post(
            fleet.resource, content=body, headers={**headers, "Authorization": f"DPoP {token}", "DPoP": proof}
        )
        fresh = maker.proof("POST", fleet.resource, token)
        again = await http.post(
            fleet.resource, content=body, headers={**headers, "Authorization": f"DPoP {token}", "DPoP": fresh}
        )
    assert first.status_code == 200, first.text
    assert replayed.status_code == 401
    assert 'error="invalid_dpop_proof"' in replayed.headers["www-authenticate"]
    assert again.status_code == 200
    deciders = fleet.deciders()[before:]
    assert deciders[0] != deciders[1] and set(deciders) == set(fleet.replicas)


async def test_the_guard_counts_failures_across_replicas(fleet: Fleet, redis_server: Redis) -> None:  # noqa: F811
    async with redis.Redis.from_url(redis_server.url) as shared:
        await shared.flushall()  # the counts start here (a replayed proof above counted as a failure)
    good = fleet.authorization_server.mint_token(sub="alice", audience=fleet.resource)
    forged = good[:-8] + "AAAAAAAA"  # the authorization server's format, a signature that does not verify
    headers, body = whoami()
    before = len(fleet.deciders())
    async with httpx2.AsyncClient(timeout=20) as http:
        failures = [
            await http.post(fleet.resource, content=body, headers={**headers, "Authorization": f"Bearer {forged}{n}"})
            for n in range(3)
        ]
        limited = await http.post(
            fleet.resource, content=body, headers={**headers, "Authorization": f"Bearer {forged}9"}
        )
    assert [r.status_code for r in failures] == [401, 401, 401]
    # Three failures, split between the replicas (neither saw three): the fourth is refused,
    # so they counted together.
    deciders = fleet.deciders()[before:]
    assert max(deciders[:3].count(r) for r in fleet.replicas) < 3
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) > 0


async def test_an_unreachable_service_is_503_never_401(tmp_path: Path) -> None:
    port = free_port()
    with serve(upstream_app()) as upstream, nginx(tmp_path, port, [free_port()], int(upstream.rsplit(":", 1)[1])):
        async with httpx2.AsyncClient(timeout=20) as http:
            headers, body = whoami()
            response = await http.post(f"http://127.0.0.1:{port}/mcp", content=body, headers=headers)
    assert response.status_code == 503  # a 401 would make the client drop a good token
    assert response.json()["error"] == "temporarily_unavailable"
