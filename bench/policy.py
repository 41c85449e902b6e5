"""Policy engines: what a decision costs, as ratios measured in one run.

In process (a warm token, a `tools/call` of `delete_notes` with its arguments, CPU time,
interleaved rounds), what each way of deciding adds to the bare app:
  scopes        the middleware with a per-tool scope rule (the fast default)
  cedar         the middleware with embedded Cedar (the policies of tests/engines)
  authzen-hit   the middleware with AuthZEN, the decision in its cache
Over loopback (Cerbos 0.55 from tests/engines/cerbos, the local authorization server; wall time):
  authzen-miss  one uncached AuthZEN evaluation at Cerbos
  introspection one RFC 7662 introspection at the local authorization server
  batch-50      a tools/list of 50 entries decided by one batch evaluation
  single-50     the same 50 as 50 single evaluations

    python bench/policy.py [--n 2000] [--rounds 9]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import time
from pathlib import Path
from typing import Any

import httpx2
from common import Call, client_headers, compare, http_scope, median, ratio_summary, table
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mcp_auth_middleware import AuthInfo, MCPAuthMiddleware
from mcp_auth_middleware.engines import AuthZEN, Cedar, DecisionRequest
from mcp_auth_middleware.testing import LocalIssuer, running_authorization_server

HERE = Path(__file__).resolve().parent
ENGINES = HERE.parent / "tests" / "engines"
ISSUER, RESOURCE = "https://auth.example.com", "https://mcp.example.com/mcp"
CALL = json.dumps(
    {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": "delete_notes", "arguments": {"project": "alice"}},
    }
).encode()


async def endpoint(request: Request) -> Response:
    return Response(b'{"ok":true}', media_type="application/json")


def answering_pdp() -> Starlette:
    """A decision point that allows everything: reached once, then the cache answers."""

    async def evaluation(request: Request) -> Response:
        return Response(b'{"decision":true}', media_type="application/json")

    return Starlette(routes=[Route("/access/v1/evaluation", evaluation, methods=["POST"])])


async def in_process(n: int, rounds: int) -> list[str]:
    issuer = LocalIssuer(ISSUER)
    token = issuer.mint_token(audience=RESOURCE, sub="alice", scopes=["mcp", "notes:delete"])
    bare = Starlette(routes=[Route("/mcp", endpoint, methods=["POST"])])
    common: dict[str, Any] = {
        "resource": RESOURCE,
        "authorization_servers": [ISSUER],
        "validator": issuer.validator(),
        "required_scopes": ["mcp"],
        "failure_limit": None,
    }
    pdp = httpx2.AsyncClient(transport=httpx2.ASGITransport(app=answering_pdp()))
    cached = AuthZEN(
        evaluation_endpoint="https://pdp.example.com/access/v1/evaluation", http_client=pdp, cache_ttl=3600
    )
    apps = {
        "bare": bare,
        "scopes": MCPAuthMiddleware(bare, tool_scopes={"delete_notes": ["notes:delete"]}, **common),
        "cedar": MCPAuthMiddleware(bare, decision_engine=Cedar(ENGINES / "policies" / "mcp.cedar"), **common),
        "authzen-hit": MCPAuthMiddleware(bare, decision_engine=cached, **common),
    }
    headers = client_headers(token)
    variants = {}
    for name, app in apps.items():
        call, scope = Call(app, CALL), http_scope(headers=headers)

        async def run(_: int, call: Call = call, scope: Any = scope, name: str = name) -> None:
            status = await call(scope)
            assert status == 200, (name, status)

        variants[name] = run
    gc.collect()
    gc.freeze()
    samples = await compare(variants, n, rounds)
    assert cached.calls == 1  # every other decision came from the cache
    added = {name: [a - b for a, b in zip(samples[name], samples["bare"], strict=True)] for name in apps}
    rows = [(name, f"{median(values):.1f}") for name, values in added.items() if name != "bare"]
    cedar, hit = (
        ratio_summary(added["cedar"], added["scopes"])[1],
        ratio_summary(added["authzen-hit"], added["scopes"])[1],
    )
    return [
        table(rows, ("in process, a tools/call of delete_notes", "CPU µs added to the bare app (median)")),
        "",
        f"embedded Cedar decision / the scope rules' decision: {cedar}",
        f"cached AuthZEN decision / the scope rules' decision: {hit}",
    ]


async def over_loopback(rounds: int) -> list[str]:
    import sys

    sys.path.insert(0, str(HERE.parent))
    from tests.engines.conftest import CERBOS, start_cerbos

    if not CERBOS.exists():
        return ["over loopback: needs Cerbos (npm ci in tests/engines/cerbos, as make test does)"]
    import tempfile

    directory = Path(tempfile.mkdtemp())
    cerbos = start_cerbos(directory)
    caller = AuthInfo("alice", "claude", frozenset({"mcp"}), issuer=ISSUER)
    try:
        with running_authorization_server(scopes_supported=["mcp"]) as server:
            server.register_resource_server("rs", "rs-secret", [RESOURCE])
            token = server.mint_token(sub="alice", audience=RESOURCE)
            engine = AuthZEN(cerbos.url, allow_http=True, cache_ttl=0.000001)
            entries = [DecisionRequest(caller, "tools/call", f"tool_{i}", None) for i in range(50)]
            await engine.decide(entries[0])  # discovery, connections
            samples: dict[str, list[float]] = {"authzen-miss": [], "introspection": [], "batch-50": [], "single-50": []}
            async with httpx2.AsyncClient() as http:
                for round_ in range(rounds):
                    start = time.perf_counter()
                    await engine._evaluate_uncached(
                        json.dumps(engine.shape(DecisionRequest(caller, "tools/call", f"x{round_}", {"p": round_})))
                    )
                    samples["authzen-miss"].append(time.perf_counter() - start)
                    start = time.perf_counter()
                    answer = await http.post(
                        server.metadata["introspection_endpoint"], data={"token": token}, auth=("rs", "rs-secret")
                    )
                    samples["introspection"].append(time.perf_counter() - start)
                    assert answer.json()["active"]
                    start = time.perf_counter()
                    await engine.decide_all(entries)
                    samples["batch-50"].append(time.perf_counter() - start)
                    start = time.perf_counter()
                    for entry in entries:
                        await engine._evaluate_uncached(json.dumps(engine.shape(entry)))
                    samples["single-50"].append(time.perf_counter() - start)
            await engine.aclose()
    finally:
        cerbos.stop()
    rows = [(name, f"{median(v) * 1000:.2f}") for name, v in samples.items()]
    miss = ratio_summary(samples["authzen-miss"], samples["introspection"])[1]
    batch = ratio_summary(samples["batch-50"], samples["single-50"])[1]
    return [
        table(rows, ("over loopback (Cerbos 0.55, the local authorization server)", "ms (median)")),
        "",
        f"uncached AuthZEN decision / one introspection round trip:   {miss}",
        f"50 list entries in one batch / 50 single evaluations:        {batch}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    print("\n".join(asyncio.run(in_process(args.n, args.rounds))))
    print()
    print("\n".join(asyncio.run(over_loopback(args.rounds))))


if __name__ == "__main__":
    main()
