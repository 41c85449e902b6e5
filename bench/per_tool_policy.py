"""Per-tool rules: the added cost per request for a 1 KB `tools/call` body (issue: per-tool auth).

Same warm token everywhere; in-process ASGI calls, interleaved rounds, CPU time.
  bare        the route alone (it reads the body too)
  no-rules    MCPAuthMiddleware with only global scopes: the body is never touched
  tool-rules  MCPAuthMiddleware with tool_scopes: the body is read, parsed, replayed

    python bench/per_tool_policy.py [--n 3000] [--rounds 7]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json

from common import Call, added, compare, http_scope, median, table
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mcp_auth_middleware import MCPAuthMiddleware
from mcp_auth_middleware.testing import LocalIssuer

ISSUER, RESOURCE = "https://auth.example.com", "https://mcp.example.com/mcp"


async def endpoint(request: Request) -> Response:
    await request.body()
    return Response(b'{"ok":true}', media_type="application/json")


def body_1kb() -> bytes:
    message = {
        "jsonrpc": "2.0",
        "id": 7,
        "method": "tools/call",
        "params": {"name": "search_docs", "arguments": {"query": "", "limit": 10}},
    }
    pad = 1024 - len(json.dumps(message))
    message["params"]["arguments"]["query"] = "x" * pad  # type: ignore[index]
    raw = json.dumps(message).encode()
    assert len(raw) == 1024
    return raw


async def run(n: int, rounds: int) -> str:
    issuer = LocalIssuer(ISSUER)
    token = issuer.mint_token(audience=RESOURCE, scopes=["mcp", "docs:read"])
    bare = Starlette(routes=[Route("/mcp", endpoint, methods=["POST"])])
    common = {
        "resource": RESOURCE,
        "authorization_servers": [ISSUER],
        "validator": issuer.validator(),
        "required_scopes": ["mcp"],
    }
    apps = {
        "bare": bare,
        "no-rules": MCPAuthMiddleware(bare, **common),
        "tool-rules": MCPAuthMiddleware(
            bare, tool_scopes={"search_docs": ["docs:read"], "drop_db": ["admin"]}, **common
        ),
    }
    body = body_1kb()
    scope = http_scope(
        headers=[
            (b"authorization", f"Bearer {token}".encode()),
            (b"content-type", b"application/json"),
            (b"content-length", b"1024"),
        ]
    )

    def variant(app: object) -> object:
        call = Call(app, body)

        async def fn(i: int) -> None:
            assert await call(scope) == 200

        return fn

    variants = {name: variant(app) for name, app in apps.items()}
    gc.collect()
    gc.freeze()
    samples = await compare(variants, n, rounds)  # type: ignore[arg-type]
    rows = [(name, f"{median(samples[name]):.1f}", f"{added(samples, name):+.1f}") for name in apps]
    rules_cost = added(samples, "tool-rules", "no-rules")
    return "\n".join(
        [
            table(rows, ("stack", "µs/req", "added vs bare")),
            f"\nper-tool rules add {rules_cost:.1f} µs per 1 KB tools/call over the middleware without rules",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    print(asyncio.run(run(args.n, args.rounds)))


if __name__ == "__main__":
    main()
