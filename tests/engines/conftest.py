"""What tests/engines start: Cerbos's policy decision point (the binary from the npm registry,
`make test` installs it in tests/engines/cerbos) with the policies in tests/engines/policies,
serving OpenID AuthZEN 1.0 on a free loopback port. A missing binary fails the tests."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mcp_auth_middleware.testing import free_port

from ..processes import stop_process, wait_for_port

HERE = Path(__file__).parent
POLICIES = HERE / "policies"
CERBOS = HERE / "cerbos" / "node_modules" / "@cerbos" / "cerbos-linux-x64" / "cerbos-linux-x64"


@dataclass
class Cerbos:
    url: str
    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        stop_process(self.process)


def start_cerbos(directory: Path) -> Cerbos:
    if not CERBOS.exists():
        pytest.fail("Cerbos is not installed: `make test` runs npm ci in tests/engines/cerbos")
    port, grpc_port = free_port(), free_port()
    policies = directory / "policies"
    policies.mkdir(parents=True, exist_ok=True)
    (policies / "tool.yaml").write_text((POLICIES / "tool.yaml").read_text())
    command = [
        str(CERBOS),
        "server",
        "--set=storage.driver=disk",
        f"--set=storage.disk.directory={policies}",
        f"--set=server.httpListenAddr=127.0.0.1:{port}",
        f"--set=server.grpcListenAddr=127.0.0.1:{grpc_port}",
        "--set=audit.enabled=false",
    ]
    # Its log goes to a file: a pipe nobody reads fills up and stops the server (it logs each request).
    with (directory / "cerbos.log").open("wb") as log:
        process = subprocess.Popen([*command, "--log-level=warn"], stdout=log, stderr=subprocess.STDOUT)
    wait_for_port(port, process, "cerbos")
    return Cerbos(f"http://127.0.0.1:{port}", process)


@pytest.fixture(scope="module")
def cerbos(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cerbos]:
    running = start_cerbos(tmp_path_factory.mktemp("cerbos"))
    try:
        yield running
    finally:
        running.stop()
