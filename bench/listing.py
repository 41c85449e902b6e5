"""Lists that match the rules, and the MCP 2026-07-28 header check: what each adds, as ratios
to the least work that does the same job, in one run (in-process ASGI, interleaved rounds,
CPU time, one warm token).

A `tools/list` result of 50 tools with JSON schemas (about 30 KB), half of them with a rule:
  bare          the app alone
  rules-all     the middleware with per-tool rules, list_filter="all" (the body is read for
                the rules; the answer passes, only compared with the rules)
  hide, annotate  the middleware rewriting the answer
  least         the least rewrite a middleware can do: hold the answer, json.loads, keep the
                entries a set of names allows, json.dumps, a new Content-Length
  least-annotate  the same, marking the entries a dict names with their scopes instead
A `tools/call` with per-tool rules, without and with `Mcp-Method`/`Mcp-Name`:
  call, call+headers

    python bench/listing.py [--n 400] [--rounds 9]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
from typing import Any

from common import CLIENT_HEADERS, Call, added, compare, http_scope, ratio_summary, table
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mcp_auth_middleware import MCPAuthMiddleware
from mcp_auth_middleware.testing import LocalIssuer

ISSUER, RESOURCE = "https://auth.example.com", "https://mcp.example.com/mcp"
SCHEMA = {
    "type": "object",
    "properties": {
        "query": {"type": "string", "description": "What to look for, in words."},
        "limit": {"type": "integer", "minimum": 1, "maximum": 100, "default": 10},
        "since": {"type": "string", "format": "date-time"},
        "tags": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["query"],
}
TOOLS = [
    {"name": f"tool_{i}", "description": f"Tool number {i}, which does one thing.", "inputSchema": SCHEMA}
    for i in range(50)
]
RULES = {f"tool_{i}": ["admin"] for i in range(0, 50, 2)}  # every other tool needs more than `mcp`
LIST_BODY = json.dumps({"jsonrpc": "2.0", "id": 1, "result": {"tools": TOOLS}}).encode()
LIST_REQUEST = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}).encode()
CALL_REQUEST = json.dumps(
    {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "tool_1", "arguments": {"query": "x"}}}
).encode()


async def endpoint(request: Request) -> Response:
    message = json.loads(await request.body())
    if message["method"] == "tools/list":
        return Response(LIST_BODY, media_type="application/json")
    return Response(b'{"jsonrpc":"2.0","id":2,"result":{"content":[]}}', media_type="application/json")


def least_rewrite(app: Any, allowed: frozenset[str] | None, needed: dict[str, list[str]]) -> Any:
    """The least a middleware can do to filter a JSON list answer (`allowed`), or to mark each
    entry with the scopes it needs (`needed`, when `allowed` is None); no token check at all."""

    async def middleware(scope: Any, receive: Any, send: Any) -> None:
        held: dict[str, Any] = {}
        chunks: list[bytes] = []

        async def rewrite(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                held["start"] = message
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body"):
                return
            document = json.loads(b"".join(chunks))
            result = document["result"]
            if allowed is not None:
                result["tools"] = [t for t in result["tools"] if t["name"] in allowed]
            else:
                for tool in result["tools"]:
                    if tool["name"] in needed:
                        tool["_meta"] = {"requiredScopes": needed[tool["name"]]}
            body = json.dumps(document).encode()
            headers = [(n, v) for n, v in held["start"]["headers"] if n != b"content-length"]
            await send({**held["start"], "headers": [*headers, (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})

        await app(scope, receive, rewrite)

    return middleware


async def run(n: int, rounds: int) -> str:
    issuer = LocalIssuer(ISSUER)
    token = issuer.mint_token(audience=RESOURCE, scopes=["mcp"])
    bare = Starlette(routes=[Route("/mcp", endpoint, methods=["POST"])])

    def ours(mode: str) -> MCPAuthMiddleware:
        return MCPAuthMiddleware(
            bare,
            resource=RESOURCE,
            authorization_servers=[ISSUER],
            validator=issuer.validator(),
            required_scopes=["mcp"],
            tool_scopes=RULES,
            list_filter=mode,  # type: ignore[arg-type]
            failure_limit=None,
        )

    headers = [*CLIENT_HEADERS[:5], (b"authorization", f"Bearer {token}".encode()), *CLIENT_HEADERS[6:]]
    mcp_headers = [(b"mcp-method", b"tools/call"), (b"mcp-name", b"tool_1")]
    allowed = frozenset(t["name"] for t in TOOLS if t["name"] not in RULES)
    lists = {
        "bare": bare,
        "rules-all": ours("all"),
        "hide": ours("hide"),
        "annotate": ours("annotate"),
        "least": least_rewrite(bare, allowed, RULES),
        "least-annotate": least_rewrite(bare, None, RULES),
    }
    calls = {"call-bare": (bare, []), "call": (ours("hide"), []), "call+headers": (ours("hide"), mcp_headers)}

    def variant(app: Any, body: bytes, extra: list[tuple[bytes, bytes]]) -> Any:
        call, scope = Call(app, body), http_scope(headers=[*headers, *extra])

        async def fn(i: int) -> None:
            assert await call(scope) == 200

        return fn

    variants = {name: variant(app, LIST_REQUEST, []) for name, app in lists.items()}
    variants |= {name: variant(app, CALL_REQUEST, extra) for name, (app, extra) in calls.items()}
    gc.collect()
    gc.freeze()
    samples = await compare(variants, n, rounds)
    rows = [
        (name, f"{added(samples, name, 'call-bare' if name.startswith('call') else 'bare'):+.1f}") for name in variants
    ]

    def rewrite_cost(name: str) -> list[float]:  # what rewriting adds to the middleware that only reads
        return [a - b for a, b in zip(samples[name], samples["rules-all"], strict=True)]

    def least(name: str) -> list[float]:
        return [a - b for a, b in zip(samples[name], samples["bare"], strict=True)]

    header_cost = [a - b for a, b in zip(samples["call+headers"], samples["call"], strict=True)]
    per_tool = [a - b for a, b in zip(samples["call"], samples["call-bare"], strict=True)]
    lines = [
        table(rows, ("stack", "µs added")),
        "",
        f"hide's rewrite / the least rewrite:     {ratio_summary(rewrite_cost('hide'), least('least'))[1]}",
        "annotate's rewrite / the least marking: "
        + ratio_summary(rewrite_cost("annotate"), least("least-annotate"))[1],
        f"Mcp-Method/Mcp-Name check / a per-tool tools/call: {ratio_summary(header_cost, per_tool)[1]}",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    print(asyncio.run(run(args.n, args.rounds)))


if __name__ == "__main__":
    main()
