"""Lists that match the rules, as real clients see them: the MCP SDK's Python client and the
TypeScript SDK's 2.x client, against a FastMCP server and an MCP SDK `MCPServer` on uvicorn,
in both protocol eras (2025-11-25 with sessions, 2026-07-28 stateless), for each `list_filter`."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from fastmcp import FastMCP
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.server.mcpserver import MCPServer
from starlette.types import ASGIApp

from mcp_auth_middleware import MCPAuthMiddleware
from mcp_auth_middleware.listing import SCOPES_META_KEY
from mcp_auth_middleware.testing import LocalIssuer, free_port, serve

pytestmark = [pytest.mark.end_to_end, pytest.mark.interop]

ISSUER = LocalIssuer("https://auth.example.com")
TS_CLIENT = Path(__file__).parent / "ts_client"
MODES = ("annotate", "hide", "all")
ERAS = ("legacy", "2026-07-28")  # legacy: the initialize handshake, 2025-11-25
RULES: dict[str, Any] = {
    "required_scopes": ["mcp"],
    "tool_scopes": {"read_notes": ["notes:read"], "delete_notes": ["notes:delete"]},
    "prompt_scopes": {"incident": ["oncall"]},
    "resource_scopes": {"notes://secret/*": ["secrets"]},
}


def whoami() -> str:
    return "me"


def read_notes() -> list[str]:
    return ["a"]


def delete_notes() -> str:
    return "deleted"


def incident() -> str:
    return "page the on-call"


def summary() -> str:
    return "sum up"


def public_note() -> str:
    return "public"


def secret_note() -> str:
    return "secret"


# The same tools, prompts and resources, registered with each framework.
TOOLS, PROMPTS = (whoami, read_notes, delete_notes), (incident, summary)
RESOURCES = {"notes://public/1": public_note, "notes://secret/1": secret_note}


def fastmcp_server() -> ASGIApp:
    mcp = FastMCP("notes")
    for tool in TOOLS:
        mcp.tool(tool)
    for prompt in PROMPTS:
        mcp.prompt(prompt)
    for uri, resource in RESOURCES.items():
        mcp.resource(uri)(resource)
    return mcp.http_app(path="/mcp")


def sdk_server() -> ASGIApp:
    server = MCPServer("notes")
    for tool in TOOLS:
        server.tool()(tool)
    for prompt in PROMPTS:
        server.prompt()(prompt)
    for uri, resource in RESOURCES.items():
        server.resource(uri)(resource)
    return server.streamable_http_app()


SERVERS: dict[str, Callable[[], ASGIApp]] = {"fastmcp": fastmcp_server, "mcp-sdk": sdk_server}


@pytest.fixture(scope="module")
def urls() -> Iterator[dict[tuple[str, str], str]]:
    """One protected server per (kind, list_filter), on real uvicorn."""
    found: dict[tuple[str, str], str] = {}
    with contextlib.ExitStack() as stack:
        for kind, build in SERVERS.items():
            for mode in MODES:
                port = free_port()
                url = f"http://127.0.0.1:{port}/mcp"
                app = MCPAuthMiddleware(
                    build(),
                    resource=url,
                    authorization_servers=[ISSUER.issuer],
                    validator=ISSUER.validator(),
                    list_filter=mode,
                    **RULES,
                )
                stack.enter_context(serve(app, port=port))
                found[kind, mode] = url
        yield found


def expected(mode: str) -> dict[str, list[list[Any]]]:
    """What a caller with `mcp` only sees: names, and the scopes annotation (or None)."""
    tools = [["whoami", None], ["read_notes", ["mcp", "notes:read"]], ["delete_notes", ["mcp", "notes:delete"]]]
    prompts = [["incident", ["mcp", "oncall"]], ["summary", None]]
    resources = [["notes://public/1", None], ["notes://secret/1", ["mcp", "secrets"]]]
    if mode == "annotate":
        return {"tools": tools, "prompts": prompts, "resources": resources}
    if mode == "hide":
        return {"tools": tools[:1], "prompts": prompts[1:], "resources": resources[:1]}
    unmarked = {
        key: [[name, None] for name, _ in entries]
        for key, entries in (("tools", tools), ("prompts", prompts), ("resources", resources))
    }
    return unmarked


def narrow_token(url: str) -> str:
    return ISSUER.mint_token(audience=url, sub="dana", scopes=["mcp"])


@pytest.mark.parametrize("era", ERAS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", list(SERVERS))
async def test_the_python_sdk_client_sees_lists_that_match_the_rules(
    urls: dict[tuple[str, str], str], kind: str, mode: str, era: str
) -> None:
    url = urls[kind, mode]
    statuses: list[int] = []

    async def record(response: httpx2.Response) -> None:
        statuses.append(response.status_code)

    http = httpx2.AsyncClient(
        headers={"Authorization": f"Bearer {narrow_token(url)}"}, timeout=10, event_hooks={"response": [record]}
    )
    async with Client(streamable_http_client(url, http_client=http), mode=era) as client:
        assert client.protocol_version == ("2025-11-25" if era == "legacy" else era)
        seen = {
            "tools": [[t.name, (t.meta or {}).get(SCOPES_META_KEY)] for t in (await client.list_tools()).tools],
            "prompts": [[p.name, (p.meta or {}).get(SCOPES_META_KEY)] for p in (await client.list_prompts()).prompts],
            "resources": [
                [str(r.uri), (r.meta or {}).get(SCOPES_META_KEY)] for r in (await client.list_resources()).resources
            ],
        }
        # Hidden or not, calling what the rules refuse is refused: the 403 step-up challenge.
        before = len(statuses)
        with pytest.raises(Exception, match="error"):
            await client.call_tool("delete_notes", {})
    assert seen == expected(mode)
    assert statuses[before] == 403  # the tools/call itself


@pytest.mark.parametrize("era", ERAS)
@pytest.mark.parametrize("kind", list(SERVERS))
def test_the_typescript_sdk_client_sees_lists_that_match_the_rules(
    urls: dict[tuple[str, str], str], kind: str, era: str
) -> None:
    node = shutil.which("node")
    assert node is not None, "node is not installed: `make test` installs it"
    assert (TS_CLIENT / "node_modules" / "@modelcontextprotocol" / "client").is_dir(), (
        "the TypeScript SDK 2.x client is not installed: `make test` runs npm ci in tests/end_to_end/ts_client"
    )
    for mode in MODES:
        url = urls[kind, mode]
        run = subprocess.run(
            [node, "lists.mjs", url, narrow_token(url), era], cwd=TS_CLIENT, capture_output=True, text=True, timeout=60
        )
        assert run.returncode == 0, run.stderr[-3000:]
        seen = json.loads(run.stdout)
        assert seen["era"] == ("2025-11-25" if era == "legacy" else era)
        assert {key: seen[key] for key in ("tools", "prompts", "resources")} == expected(mode), mode
        # The TypeScript client reads the 403 as a step-up: insufficient scope, naming what is needed.
        assert "Insufficient scope" in seen["delete_notes"] and "mcp notes:delete" in seen["delete_notes"]
