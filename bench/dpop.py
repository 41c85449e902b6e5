"""DPoP (RFC 9449) in one run: what a proof check costs against one raw ES256 verify, and
what a cached DPoP-bound token with a fresh proof adds to a request.

Variants, each on pre-built fresh proofs (a proof is used once):
  es256 floor   one raw ES256 signature verify with `cryptography` (the key loaded once)
  proof check   DPoPVerifier.verify: parse, key import, signature, claims, replay store
  bare          a Starlette route
  bearer        the middleware with a cached bearer token (the warm path)
  dpop          the middleware with a cached DPoP-bound token and a fresh proof

    python bench/dpop.py [--n 500] [--rounds 15]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import secrets
import time
from collections.abc import Awaitable, Callable

from common import Call, added, client_headers, compare, http_scope, median, table
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from joserfc import jws
from joserfc.jwk import ECKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mcp_auth_middleware import MCPAuthMiddleware
from mcp_auth_middleware.dpop import DPoPVerifier
from mcp_auth_middleware.testing import LocalIssuer

ISSUER = "https://auth.example.com"
RESOURCE = "https://mcp.example.com/mcp"
KEY = ECKey.generate_key("P-256")


async def endpoint(request: Request) -> Response:
    return Response(b'{"ok":true}', media_type="application/json")


def proofs(token: str, count: int) -> list[str]:
    ath = base64.urlsafe_b64encode(hashlib.sha256(token.encode()).digest()).rstrip(b"=").decode()
    header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": KEY.as_dict(private=False)}
    return [
        jws.serialize_compact(
            header,
            json.dumps(
                {"jti": secrets.token_urlsafe(12), "htm": "POST", "htu": RESOURCE, "iat": int(time.time()), "ath": ath}
            ),
            KEY,
        )
        for _ in range(count)
    ]


def raw_es256(proof_list: list[str]) -> Callable[[int], Awaitable[None]]:
    public = KEY.raw_value.public_key() if hasattr(KEY.raw_value, "public_key") else KEY.raw_value
    parsed = []
    for p in proof_list:
        head, payload, sig = p.split(".")
        raw = base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4))
        der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
        parsed.append((f"{head}.{payload}".encode(), der))

    async def verify(i: int) -> None:
        data, der = parsed[i % len(parsed)]
        public.verify(der, data, ec.ECDSA(hashes.SHA256()))

    return verify


async def run(n: int, rounds: int) -> str:
    issuer = LocalIssuer(ISSUER)
    bound = issuer.mint_token(audience=RESOURCE, cnf={"jkt": KEY.thumbprint()})
    bearer = issuer.mint_token(audience=RESOURCE)
    needed = n * (rounds + 2)
    checked, requested = proofs(bound, needed), proofs(bound, needed)
    verifier = DPoPVerifier()
    bare = Starlette(routes=[Route("/mcp", endpoint, methods=["POST"])])
    app = MCPAuthMiddleware(
        bare, resource=RESOURCE, authorization_servers=[ISSUER], validator=issuer.validator(), dpop=True
    )
    counters = {"proof": 0, "dpop": 0}

    async def proof_check(i: int) -> None:
        counters["proof"] += 1
        await verifier.verify(checked[counters["proof"]], method="POST", url=RESOURCE, access_token=bound)

    bare_call, app_call = Call(bare), Call(app)
    bearer_scope = http_scope(headers=client_headers(bearer))
    bare_scope = bearer_scope  # the same headers; the bare app reads none of them

    async def bare_request(i: int) -> None:
        await bare_call(bare_scope)

    async def bearer_request(i: int) -> None:
        await app_call(bearer_scope)

    async def dpop_request(i: int) -> None:
        counters["dpop"] += 1
        proof = (b"dpop", requested[counters["dpop"]].encode())
        scope = http_scope(headers=[proof, *client_headers(bound, scheme="DPoP")])
        assert await app_call(scope) == 200

    samples = await compare(
        {
            "es256 floor": raw_es256(checked),
            "proof check": proof_check,
            "bare": bare_request,
            "bearer": bearer_request,
            "dpop": dpop_request,
        },
        n,
        rounds,
    )
    floor, check = median(samples["es256 floor"]), median(samples["proof check"])
    rows = [(name, f"{median(values):.1f}") for name, values in samples.items()]
    return "\n".join(
        [
            table(rows, ("variant", "µs/call")),
            f"\nproof check / raw ES256 verify, same run: {check / floor:.2f}x",
            f"cached DPoP-bound token + fresh proof adds {added(samples, 'dpop'):.1f} µs;"
            f" a cached bearer token adds {added(samples, 'bearer'):.1f} µs;"
            f" the difference is {added(samples, 'dpop') - added(samples, 'bearer'):.1f} µs (one proof check:"
            f" {check:.1f} µs, no token re-verification)",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    print(asyncio.run(run(args.n, args.rounds)))


if __name__ == "__main__":
    main()
