"""The MCP TypeScript SDK client (pinned in ts_client/package.json, installed by `make test`)
through its whole OAuth flow against the demo stack on real uvicorn."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from mcp_auth_middleware.demo import demo_stack
from mcp_auth_middleware.testing import free_port

pytestmark = [pytest.mark.end_to_end, pytest.mark.interop]

CLIENT = Path(__file__).parent / "ts_client"


def test_typescript_sdk_client_full_oauth_flow() -> None:
    node = shutil.which("node")
    assert node is not None, "node is not installed: `make test` installs it"
    assert (CLIENT / "node_modules" / "@modelcontextprotocol" / "sdk").is_dir(), (
        "the TypeScript SDK is not installed: `make test` runs npm ci in tests/end_to_end/ts_client"
    )
    with demo_stack(port=free_port(), as_port=free_port()) as stack:
        run = subprocess.run(
            [node, "flow.mjs", stack.resource], cwd=CLIENT, capture_output=True, text=True, timeout=120
        )
    assert run.returncode == 0, run.stderr[-3000:]
    steps: dict[str, list[dict[str, Any]]] = {}
    for line in run.stdout.splitlines():
        record = json.loads(line)
        steps.setdefault(record.pop("step"), []).append(record)

    authorized = steps["authorized"][0]
    registration, authorization = authorized["registration"], authorized["authorization"]
    assert "client_secret" not in registration  # RFC 7591 §3.2.1: absent, never null (the SDK's schema)
    assert authorization["code_challenge_method"] == "S256"
    assert authorization["resource"] == stack.resource  # RFC 8707, from the protected resource metadata
    assert authorization["scope"] == "mcp"  # from the 401 challenge
    assert [step["result"]["sub"] for step in steps["whoami"]] == ["demo-user", "demo-user"]

    assert steps["refresh"] == [{"result": "AUTHORIZED", "new_token": True}]

    # The 1.x SDK answers 403 insufficient_scope by refreshing with the larger scope (which
    # RFC 6749 §6 forbids) and gives up; docs/troubleshooting.md says what users see.
    assert "403" in steps["step-up denied"][0]["error"]
    assert steps["step-up"] == [{"redirected": "REDIRECT", "authorized": "AUTHORIZED", "scope": "mcp notes:delete"}]
    assert steps["delete_notes"][0]["result"] == {"result": "deleted"}
