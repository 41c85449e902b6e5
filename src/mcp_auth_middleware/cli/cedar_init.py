"""`mcp-oauth-middleware cedar-init URL --token T`: a starting Cedar schema and policy file from
the tools a running MCP server lists (per tool, its arguments as attributes), for the `Cedar`
policy engine (docs/policy.md). Writes mcp.cedar and mcp.cedarschema.json (never over files that
are there). Needs the MCP SDK (the `mcp` extra)."""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any

from ._common import fail


def add_parser(commands: Any) -> None:
    init = commands.add_parser(
        "cedar-init",
        help="write a starting Cedar schema and policy file from a running server's tools",
        description=__doc__,
    )
    init.add_argument("url", help="the MCP server's URL")
    init.add_argument("--token", required=True, help="an access token the server accepts (it lists its tools)")
    init.add_argument("--out", default=".", help="the directory to write mcp.cedar and mcp.cedarschema.json in")
    init.add_argument("--namespace", default="Mcp", help="the Cedar namespace (default Mcp, as the engine sends)")
    init.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..engines.cedar_schema import starting_files

    out = Path(args.out)
    policy_file, schema_file = out / "mcp.cedar", out / "mcp.cedarschema.json"
    there = [str(f) for f in (policy_file, schema_file) if f.exists()]
    if there:
        return fail("cedar-init", f"{' and '.join(there)} already there: move them, or choose another --out")
    from ..inventory import ListingFailedError

    try:
        tools = asyncio.run(_tools(args.url, args.token))
    except ImportError as exc:
        return fail("cedar-init", f"needs {exc.name or 'the MCP SDK'}: pip install 'mcp-oauth-middleware[mcp]'")
    except ListingFailedError as exc:  # the server's refusal, a connection error: one line, not a traceback
        return fail("cedar-init", f"could not list the tools of {args.url}: {exc}", 3)
    schema, policies = starting_files(tools, args.namespace, args.url)
    out.mkdir(parents=True, exist_ok=True)
    policy_file.write_text(policies)
    schema_file.write_text(json.dumps(schema, indent=2))
    engine = f"Cedar({str(policy_file)!r}, schema={str(schema_file)!r})"
    print(f"wrote {policy_file} ({len(tools)} tools) and {schema_file}: {engine}")
    return 0


async def _tools(url: str, token: str) -> list[dict[str, Any]]:
    from ..inventory import listing_client

    found: list[dict[str, Any]] = []
    async with listing_client(url, token) as client:
        cursor = None
        for _ in range(100):  # pages
            page = (await client.list_tools(cursor=cursor)).model_dump(by_alias=True, mode="json")
            found += page.get("tools") or []
            cursor = page.get("nextCursor")
            if cursor is None:
                break
    return found
