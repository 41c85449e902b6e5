"""Cedar embedded: requests as the module says, policies reloaded when the file changes, a file
that does not parse refused with its line, a request Cedar cannot evaluate never an allow."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from mcp_auth_middleware import AuthInfo
from mcp_auth_middleware.engines import Cedar, DecisionRequest, EngineError

from .conftest import POLICIES

ALICE = AuthInfo(
    "alice", "claude", frozenset({"mcp"}), issuer="https://auth.example.com", claims={"roles": ["auditor"]}
)
BATCH = AuthInfo("batch-job", "batch-job", frozenset({"mcp"}))


def request(name: str, caller: AuthInfo = ALICE, **arguments: str) -> DecisionRequest:
    return DecisionRequest(caller, "tools/call", name, arguments)


@pytest.fixture
def policies(tmp_path: Path) -> Path:
    path = tmp_path / "mcp.cedar"
    path.write_text((POLICIES / "mcp.cedar").read_text())
    return path


async def test_the_request_cedar_sees(policies: Path) -> None:
    engine = Cedar(policies)
    decisions = await engine.decide_all(
        [
            request("delete_notes", project="alice"),
            request("delete_notes", project="bob"),
            request("audit"),
            request("audit", BATCH),
            request("delete_notes", BATCH, project="batch-job"),  # a machine is no Mcp::User
            DecisionRequest(ALICE, "tools/call", "delete_notes", None),  # arguments unknown
        ]
    )
    assert [d.allowed for d in decisions] == [True, False, True, False, False, False]
    assert "policy" in decisions[0].reason


def rewrite(path: Path, text: str, ahead: float) -> None:
    """A new policy file, as an editor saves it (its time moved on, whatever the clock's grain)."""
    path.write_text(text)
    os.utime(path, (time.time() + ahead, time.time() + ahead))


async def test_a_changed_file_is_read_again_and_a_broken_one_is_no_allow(policies: Path) -> None:
    engine = Cedar(policies, reload_every=0)
    original = (POLICIES / "mcp.cedar").read_text()
    assert not (await engine.decide(request("new_tool"))).allowed
    rewrite(policies, original + '\npermit(principal, action, resource == Mcp::Tool::"new_tool");\n', 5)
    assert (await engine.decide(request("new_tool"))).allowed
    rewrite(policies, "permit(principal, action, resource) when { oops ;", 10)
    with pytest.raises(EngineError, match=r"mcp.cedar:1: the policy does not parse"):
        await engine.decide(request("whoami"))


def test_a_bad_policy_file_is_refused_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.cedar"
    path.write_text(
        'permit(principal, action, resource == Mcp::Tool::"a");\n\n// a comment\n'
        "permit(principal, action,\n  resource) when { context.x == };\n"
    )
    with pytest.raises(ValueError, match=r"bad.cedar:4: the policy does not parse"):
        Cedar(path)
    with pytest.raises(ValueError, match=r"the Cedar policy file .*missing.cedar cannot be read: No such file"):
        Cedar(tmp_path / "missing.cedar")
    with pytest.raises(ValueError, match=r"the Cedar schema .*missing.json cannot be read: No such file"):
        Cedar(path, schema=tmp_path / "missing.json")
    good = tmp_path / "good.cedar"
    good.write_text((POLICIES / "mcp.cedar").read_text())
    assert repr(Cedar(good)) == f"Cedar({str(good)!r})"  # as the gateway command's startup line names it


def test_cedar_from_the_variables(tmp_path: Path) -> None:
    """MCP_AUTH_DECISION_ENGINE=cedar:FILE with MCP_AUTH_CEDAR_SCHEMA (the schema is enforced)."""
    from mcp_auth_middleware import AuthConfig
    from mcp_auth_middleware.engines.cedar_schema import starting_files

    policies, schema = tmp_path / "mcp.cedar", tmp_path / "mcp.cedarschema.json"
    types, permits = starting_files([{"name": "whoami", "inputSchema": {"type": "object"}}], "Mcp", "")
    policies.write_text(permits)
    schema.write_text(json.dumps(types))
    base = {"MCP_AUTH_RESOURCE": "https://mcp.example.com/mcp", "MCP_AUTH_ISSUER": "https://auth.example.com"}
    named = base | {"MCP_AUTH_DECISION_ENGINE": f"cedar:{policies}", "MCP_AUTH_CEDAR_SCHEMA": str(schema)}
    engine = AuthConfig.from_env(named).decision_engine
    assert isinstance(engine, Cedar) and engine.path == policies and engine.schema == schema.read_text()
    policies.write_text('permit(principal, action == Mcp::Action::"tools/call", resource == Mcp::Nope::"x");\n')
    with pytest.raises(ValueError, match="do not match the schema"):
        AuthConfig.from_env(named)
