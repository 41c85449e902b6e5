"""Introspection: the cost of a cached hit, and how many calls a burst of one new token makes.

python bench/introspection.py [--n 1000] [--rounds 25] [--burst 500]
"""

from __future__ import annotations

import argparse
import asyncio
import gc

from common import (
    Call,
    added,
    client_headers,
    compare,
    differences,
    hash_lookup_floor,
    http_scope,
    median,
    ratio_summary,
    table,
    verdict,
)
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mcp_auth_middleware import IntrospectionValidator, MCPAuthMiddleware
from mcp_auth_middleware.testing import running_authorization_server

RESOURCE = "https://mcp.example.com/mcp"


async def endpoint(request: Request) -> Response:
    return Response(b'{"ok":true}', media_type="application/json")


async def run(n: int, rounds: int, burst: int, issuer: str, mint: object) -> str:
    bare = Starlette(routes=[Route("/mcp", endpoint, methods=["POST"])])
    validator = IntrospectionValidator(
        f"{issuer}/introspect", client_id="rs", client_secret="rs-secret", audience=RESOURCE, cache_ttl=3600
    )
    ours = MCPAuthMiddleware(bare, resource=RESOURCE, authorization_servers=[issuer], validator=validator)
    token = mint()  # type: ignore[operator]
    scope = http_scope(headers=client_headers(token))
    call_bare, call_ours = Call(bare), Call(ours)
    assert await call_ours(scope) == 200  # the one introspection call; the rest are cache hits

    async def bare_fn(i: int) -> None:
        await call_bare(scope)

    call_floor = Call(hash_lookup_floor(bare, token))

    async def floor_fn(i: int) -> None:
        assert await call_floor(scope) == 200

    async def ours_fn(i: int) -> None:
        assert await call_ours(scope) == 200

    gc.collect()
    gc.freeze()
    samples = await compare(
        {"bare": bare_fn, "hash+lookup floor": floor_fn, "ours (cached introspection)": ours_fn}, n, rounds
    )
    rows = [(name, f"{median(v):.1f}", f"{added(samples, name):+.1f}") for name, v in samples.items()]

    # A burst: `burst` concurrent requests carrying one new token.
    burst_validator = IntrospectionValidator(
        f"{issuer}/introspect", client_id="rs", client_secret="rs-secret", audience=RESOURCE
    )
    burst_app = MCPAuthMiddleware(bare, resource=RESOURCE, authorization_servers=[issuer], validator=burst_validator)
    new_scope = http_scope(headers=client_headers(mint()))  # type: ignore[operator]
    statuses = await asyncio.gather(*(Call(burst_app)(new_scope) for _ in range(burst)))
    assert set(statuses) == {200}
    hit = ratio_summary(differences(samples, "ours (cached introspection)"), differences(samples, "hash+lookup floor"))
    return "\n".join(
        [
            table(rows, ("stack", "µs/req", "added vs bare")),
            "",
            f"cached introspection hit, added / hash+lookup floor: {hit[1]}  {verdict(hit[0], 2.0, 1.5)}",
            "  (the ratio taken within each round: median over rounds, and the middle half of the rounds)",
            f"{burst} concurrent requests with one new token -> {burst_validator.calls} introspection call(s)",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=25)
    parser.add_argument("--burst", type=int, default=500)
    args = parser.parse_args()
    with running_authorization_server(token_format="opaque", default_resource=RESOURCE) as server:
        server.register_resource_server("rs", "rs-secret", [RESOURCE])
        print(asyncio.run(run(args.n, args.rounds, args.burst, server.issuer, lambda: server.mint_token(sub="u"))))


if __name__ == "__main__":
    main()
