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
An event stream whose list event comes in many small chunks (a 1.1 MB list in 1 KiB chunks, a
68 KB one in 1-byte chunks), through the middleware in hide mode / the app alone: the rewrite
holds the event and must stay linear in its bytes (the work for each chunk, not a rescan).

    python bench/listing.py [--n 400] [--rounds 9]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
from typing import Any

from common import CLIENT_HEADERS, Call, added, compare, http_scope, median, ratio_summary, table
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


def chunked_stream(body: bytes, size: int) -> Any:
    """An ASGI app streaming one list event in chunks of `size` bytes."""
    event = b"event: message\ndata: " + body + b"\n\n"
    chunks = [event[i : i + size] for i in range(0, len(event), size)]

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
        for chunk in chunks:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    return app


async def streams(rounds: int) -> str:
    """Per stream: the middleware (hide) with the event in small chunks, the same in one chunk
    (the rewrite's own work: one json.loads and one json.dumps), and the app alone."""
    issuer = LocalIssuer(ISSUER)
    token = issuer.mint_token(audience=RESOURCE, scopes=["mcp"])
    headers = [*CLIENT_HEADERS[:5], (b"authorization", f"Bearer {token}".encode()), *CLIENT_HEADERS[6:]]
    big = {"jsonrpc": "2.0", "id": 1, "result": {"tools": TOOLS * 55}}  # about 1.1 MB
    small = {"jsonrpc": "2.0", "id": 1, "result": {"tools": TOOLS[:2] * 85}}  # about 68 KB
    logging.getLogger("mcp_auth_middleware").setLevel(logging.ERROR)  # the rules name tools these lists lack
    lines = []
    for label, body, size, n in (("in 1 KiB chunks", big, 1024, 3), ("in 1-byte chunks", small, 1, 2)):
        encoded = json.dumps(body).encode()

        def variant(target: Any) -> Any:
            call, scope = Call(target, LIST_REQUEST), http_scope(headers=headers)

            async def fn(i: int) -> None:
                assert await call(scope) == 200

            return fn

        def ours(app: Any) -> MCPAuthMiddleware:
            return MCPAuthMiddleware(
                app,
                resource=RESOURCE,
                authorization_servers=[ISSUER],
                validator=issuer.validator(),
                required_scopes=["mcp"],
                tool_scopes=RULES,
                list_filter="hide",
                failure_limit=None,
            )

        app, whole = chunked_stream(encoded, size), chunked_stream(encoded, len(encoded) + 64)
        variants = {"bare": variant(app), "hide": variant(ours(app)), "one chunk": variant(ours(whole))}
        samples = await compare(variants, n, rounds)
        per_ms = median(samples["hide"]) / 1000
        lines.append(
            f"a {len(encoded) // 1024} KB list event {label}, {per_ms:.1f} ms a stream: hide / the same in one "
            f"chunk: {ratio_summary(samples['hide'], samples['one chunk'])[1]}; hide / the app alone: "
            f"{ratio_summary(samples['hide'], samples['bare'])[1]}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    print(asyncio.run(run(args.n, args.rounds)))
    print()
    print(asyncio.run(streams(args.rounds)))


if __name__ == "__main__":
    main()
