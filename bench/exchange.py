"""Token exchange (RFC 8693): what a cached exchange costs a tool, as a ratio to what a cached
introspection hit costs a request, in the same run; and one exchange round trip against the
local authorization server on real uvicorn, as a ratio to one introspection round trip there.

In-process (CPU time, interleaved rounds, one warm token):
  bare           the route alone
  introspection  the middleware with a cached introspection result (its added cost: the hit)
  exchange       the same, and the route asks `exchange.token(request, "tickets")` (cached)
The cached exchange's cost is exchange - introspection, in the same round.

Round trips (wall time, sequential, a new caller token each): one token exchange, one
introspection, at the same server over loopback HTTP.

    python bench/exchange.py [--n 1000] [--rounds 15] [--trips 200]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import time
from typing import Any

from common import Call, client_headers, compare, differences, http_scope, median, ratio_summary, table
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mcp_auth_middleware import AuthInfo, IntrospectionValidator, MCPAuthMiddleware
from mcp_auth_middleware.exchange import Downstream, TokenExchange
from mcp_auth_middleware.testing import running_authorization_server

RESOURCE, TICKETS = "https://mcp.example.com/mcp", "https://tickets.example.com/api"


async def in_process(n: int, rounds: int, issuer: str, mint: Any) -> tuple[str, str]:
    exchange = TokenExchange(
        client_id="mcp-server",
        client_secret="s",
        token_endpoint=f"{issuer}/token",
        downstreams={"tickets": Downstream(TICKETS, scopes="tickets:read")},
    )

    async def plain(request: Request) -> Response:
        return Response(b'{"ok":true}', media_type="application/json")

    async def exchanging(request: Request) -> Response:
        await exchange.token(request, "tickets")
        return Response(b'{"ok":true}', media_type="application/json")

    def protected(endpoint: Any) -> MCPAuthMiddleware:
        validator = IntrospectionValidator(
            f"{issuer}/introspect", client_id="rs", client_secret="rs-secret", audience=RESOURCE, cache_ttl=3600
        )
        app = Starlette(routes=[Route("/mcp", endpoint, methods=["POST"])])
        return MCPAuthMiddleware(app, resource=RESOURCE, authorization_servers=[issuer], validator=validator)

    token = mint()
    scope = http_scope(headers=client_headers(token))
    calls = {
        "bare": Call(Starlette(routes=[Route("/mcp", plain, methods=["POST"])])),
        "introspection": Call(protected(plain)),
        "exchange": Call(protected(exchanging)),
    }
    for call in calls.values():
        assert await call(scope) == 200  # the introspection and the exchange happen here, once

    def timed(call: Call) -> Any:
        async def fn(i: int) -> None:
            await call(scope)

        return fn

    gc.collect()
    gc.freeze()
    samples = await compare({name: timed(call) for name, call in calls.items()}, n, rounds)
    gc.unfreeze()
    assert exchange.exchanges == 1
    hit = differences(samples, "introspection")
    cached_exchange = differences(samples, "exchange", "introspection")
    rows = [
        ("bare", f"{median(samples['bare']):.1f}", "+0.0"),
        ("introspection (cached)", f"{median(samples['introspection']):.1f}", f"{median(hit):+.1f}"),
        ("+ exchange.token (cached)", f"{median(samples['exchange']):.1f}", f"{median(cached_exchange):+.1f} more"),
    ]
    await exchange.aclose()
    return table(rows, ("stack", "µs/req", "added")), ratio_summary(cached_exchange, hit)[1]


async def round_trips(trips: int, issuer: str, mint: Any) -> str:
    exchange = TokenExchange(
        client_id="mcp-server",
        client_secret="s",
        token_endpoint=f"{issuer}/token",
        downstreams={"tickets": Downstream(TICKETS, scopes="tickets:read")},
        cache_size=0,
    )
    introspection = IntrospectionValidator(
        f"{issuer}/introspect", client_id="rs", client_secret="rs-secret", audience=RESOURCE, cache_ttl=0
    )
    tokens = [mint() for _ in range(2 * trips + 20)]
    exchange_ms: list[float] = []
    introspect_ms: list[float] = []
    for i in range(trips + 10):  # interleaved; the first 10 warm the connections up
        caller = AuthInfo("u", "c", frozenset(), token=tokens[2 * i])
        started = time.perf_counter()
        await exchange.token(caller, "tickets")
        middle = time.perf_counter()
        await introspection.validate(tokens[2 * i + 1])
        ended = time.perf_counter()
        if i >= 10:
            exchange_ms.append((middle - started) * 1000)
            introspect_ms.append((ended - middle) * 1000)
    await exchange.aclose()
    await introspection.aclose()
    ratio = ratio_summary(exchange_ms, introspect_ms)[1]
    return (
        f"one exchange round trip: {statistics.median(exchange_ms):.2f} ms (median of {trips}); "
        f"one introspection round trip: {statistics.median(introspect_ms):.2f} ms\n"
        f"exchange round trip / introspection round trip: {ratio}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--trips", type=int, default=200)
    args = parser.parse_args()
    with running_authorization_server(
        token_format="opaque", scopes_supported=["mcp", "tickets:read"], default_resource=RESOURCE
    ) as server:
        server.register_resource_server("rs", "rs-secret", [RESOURCE])
        server.register_client(client_id="mcp-server", client_secret="s", grant_types=[])
        server.allow_token_exchange("mcp-server", from_resources=[RESOURCE], to_resources=[TICKETS])

        def mint() -> str:
            return server.mint_token(sub="u", scopes=["mcp", "tickets:read"])

        async def both() -> str:
            rows, ratio = await in_process(args.n, args.rounds, server.issuer, mint)
            trips = await round_trips(args.trips, server.issuer, mint)
            return f"{rows}\n\ncached exchange.token, added / cached introspection hit, added: {ratio}\n\n{trips}"

        print(asyncio.run(both()))


if __name__ == "__main__":
    main()
