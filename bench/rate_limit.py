"""The token-guessing guard: a legitimate request's added cost while 10,000 addresses attack.

    python bench/rate_limit.py [--attackers 10000] [--n 3000] [--rounds 7]

The attack is real: every attacking address has failed (and is counted in `limits`' memory
storage) before the timing starts, and attack requests keep arriving between legitimate ones.
"""

from __future__ import annotations

import argparse
import asyncio
import gc

from common import Call, added, client_headers, http_scope, median, per_call_us, table
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mcp_auth_middleware import MCPAuthMiddleware
from mcp_auth_middleware.testing import LocalIssuer

ISSUER, RESOURCE = "https://auth.example.com", "https://mcp.example.com/mcp"


async def endpoint(request: Request) -> Response:
    return Response(b'{"ok":true}', media_type="application/json")


def attacker(i: int) -> str:
    return f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}"


async def run(attackers: int, n: int, rounds: int) -> str:
    issuer = LocalIssuer(ISSUER)
    token = issuer.mint_token(audience=RESOURCE)
    bare = Starlette(routes=[Route("/mcp", endpoint, methods=["POST"])])
    common = {"resource": RESOURCE, "authorization_servers": [ISSUER], "validator": issuer.validator()}
    guarded = MCPAuthMiddleware(bare, failure_limit="2/minute", **common)
    unguarded = MCPAuthMiddleware(bare, failure_limit=None, **common)
    attack_call = Call(guarded)
    for i in range(attackers):  # every attacker fails once: 10,000 keys in limits' storage
        await attack_call(dict(http_scope(headers=[(b"authorization", b"Bearer guess")]), client=(attacker(i), 1)))
    assert guarded.guard is not None and len(guarded.guard.suspects) == attackers

    legit = http_scope(headers=client_headers(token))
    call_guarded, call_unguarded = Call(guarded), Call(unguarded)
    attack_counter = iter(range(10**9))

    async def attack_burst(size: int = 500) -> None:
        """Untimed: the attack goes on between timed batches, keeping limits' storage busy."""
        for _ in range(size):
            i = next(attack_counter)
            status = await attack_call(
                dict(
                    http_scope(headers=[(b"authorization", f"Bearer guess-{i}".encode())]),
                    client=(attacker(i % 1000), 1),
                )
            )  # repeat offenders
            assert status in (401, 429)

    async def with_guard(i: int) -> None:
        assert await call_guarded(legit) == 200

    async def without_guard(i: int) -> None:
        assert await call_unguarded(legit) == 200

    gc.collect()
    gc.freeze()
    samples: dict[str, list[float]] = {"no guard": [], "guard": []}
    for fn in (with_guard, without_guard):
        await per_call_us(fn, 200)  # warm-up
    for _ in range(rounds):
        await attack_burst()
        samples["guard"].append(await per_call_us(with_guard, n))
        await attack_burst()
        samples["no guard"].append(await per_call_us(without_guard, n))
    rows = [(name, f"{median(v):.2f}") for name, v in samples.items()]
    cost = added(samples, "guard", "no guard")
    return "\n".join(
        [
            table(rows, ("legitimate request", "µs")),
            f"\nwith {attackers} attacking addresses counted (and the attack going on between batches), "
            f"the guard adds {cost:.2f} µs to a legitimate request (target <= 10 µs); "
            f"attack requests refused with 429 so far: {guarded.guard.blocked}",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--attackers", type=int, default=10_000)
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    print(asyncio.run(run(args.attackers, args.n, args.rounds)))


if __name__ == "__main__":
    main()
