"""Local JWT validation, side by side in one run (issue: JWTValidator benchmarks).

Stacks, all around the same Starlette route, called in-process:
  bare      the route alone
  ours      MCPAuthMiddleware + JWTValidator (static key)
  fastmcp   FastMCP's RemoteAuthProvider + JWTVerifier (static key), wired as FastMCP wires it
  mcp-sdk   the MCP SDK's AuthenticationMiddleware(BearerAuthBackend) + RequireAuthMiddleware,
            with a PyJWT TokenVerifier
Streams: warm (one token reused) and cold (a new token on every request). The floor is the raw
`cryptography` RS256 verify of the same tokens, timed in the same run.

    python bench/jwt_validation.py [--n 1000] [--rounds 25]

Many short rounds, each running every stack in turn: on a shared VM the machine's speed
drifts, and a difference taken within one short round is what stays comparable.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gc
from typing import Any

import jwt as pyjwt
from common import Call, added, compare, hash_lookup_floor, http_scope, median, ratio, table
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from fastmcp.server.auth import RemoteAuthProvider
from fastmcp.server.auth.middleware import RequireAuthMiddleware as FastMCPRequireAuth
from fastmcp.server.auth.providers.jwt import JWTVerifier
from mcp.server.auth.middleware.auth_context import AuthContextMiddleware
from mcp.server.auth.middleware.bearer_auth import BearerAuthBackend, RequireAuthMiddleware
from mcp.server.auth.provider import AccessToken
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, request_response

from mcp_auth_middleware import MCPAuthMiddleware
from mcp_auth_middleware.testing import LocalIssuer

ISSUER = "https://auth.example.com"
RESOURCE = "https://mcp.example.com/mcp"


async def endpoint(request: Request) -> Response:
    return Response(b'{"ok":true}', media_type="application/json")


def bare_app() -> Starlette:
    return Starlette(routes=[Route("/mcp", endpoint, methods=["POST"])])


def ours(issuer: LocalIssuer) -> Any:
    return MCPAuthMiddleware(
        bare_app(),
        resource=RESOURCE,
        authorization_servers=[ISSUER],
        validator=issuer.validator(),
        required_scopes=["mcp"],
    )


def fastmcp(issuer: LocalIssuer) -> Any:
    verifier = JWTVerifier(
        public_key=issuer.key.as_pem(private=False).decode(),
        issuer=ISSUER,
        audience=RESOURCE,
        algorithm="RS256",
        required_scopes=["mcp"],
    )
    auth = RemoteAuthProvider(verifier, authorization_servers=[ISSUER], base_url="https://mcp.example.com")
    routes = [
        *auth.get_routes(mcp_path="/mcp"),
        Route("/mcp", FastMCPRequireAuth(request_response(endpoint), ["mcp"], None), methods=["POST"]),
    ]
    return Starlette(routes=routes, middleware=auth.get_middleware())


class PyJWTVerifier:
    """A TokenVerifier as the MCP SDK's docs suggest writing one, on PyJWT."""

    def __init__(self, issuer: LocalIssuer) -> None:
        self.key = issuer.key.as_pem(private=False)

    async def verify_token(self, token: str) -> AccessToken | None:
        try:
            claims = pyjwt.decode(token, self.key, algorithms=["RS256"], audience=RESOURCE, issuer=ISSUER)
        except pyjwt.PyJWTError:
            return None
        return AccessToken(
            token=token,
            client_id=claims.get("client_id", ""),
            scopes=claims.get("scope", "").split(),
            expires_at=claims.get("exp"),
            resource=RESOURCE,
            subject=claims.get("sub"),
        )


def mcp_sdk(issuer: LocalIssuer) -> Any:
    route = Route("/mcp", RequireAuthMiddleware(request_response(endpoint), ["mcp"], None), methods=["POST"])
    middleware = [
        Middleware(AuthenticationMiddleware, backend=BearerAuthBackend(PyJWTVerifier(issuer))),
        Middleware(AuthContextMiddleware),
    ]
    return Starlette(routes=[route], middleware=middleware)


async def run(n: int, rounds: int) -> str:
    issuer = LocalIssuer(ISSUER)
    apps = {"bare": bare_app(), "ours": ours(issuer), "fastmcp": fastmcp(issuer), "mcp-sdk": mcp_sdk(issuer)}
    warm_token = issuer.mint_token(audience=RESOURCE, scopes=["mcp"])
    cold_n = max(100, n // 4)
    cold_tokens = [
        issuer.mint_token(audience=RESOURCE, scopes=["mcp"], sub=f"user-{i}")
        for i in range(cold_n * rounds + max(50, cold_n // 10))
    ]

    def warm(app: Any) -> Any:
        call, scope = Call(app), http_scope(headers=[(b"authorization", f"Bearer {warm_token}".encode())])

        async def fn(i: int) -> None:
            assert await call(scope) == 200

        return fn

    def cold(app: Any) -> Any:
        call = Call(app)
        scopes = [http_scope(headers=[(b"authorization", f"Bearer {t}".encode())]) for t in cold_tokens]
        counter = iter(range(len(scopes)))

        async def fn(i: int) -> None:
            assert await call(scopes[next(counter)]) == 200

        return fn

    def rs256_floor() -> Any:
        """The raw cryptography verify of a new token's signature: what no stack can avoid.
        The key is loaded from its PEM, as a resource server (and each peer here) holds it."""
        public = load_pem_public_key(issuer.key.as_pem(private=False))
        assert isinstance(public, rsa.RSAPublicKey)
        parts = [t.rsplit(".", 1) for t in cold_tokens]
        decoded = [(i.encode(), base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))) for i, s in parts]
        counter = iter(range(len(decoded)))

        async def fn(i: int) -> None:
            signing_input, signature = decoded[next(counter)]
            public.verify(signature, signing_input, padding.PKCS1v15(), hashes.SHA256())

        return fn

    warm_variants = {name: warm(app) for name, app in apps.items()}
    warm_variants["hash+lookup floor"] = warm(hash_lookup_floor(bare_app(), warm_token))
    # For the bare app the token is never looked at: its "cold" is the same as warm.
    cold_variants = {"floor": rs256_floor(), **{name: cold(app) for name, app in apps.items()}}
    # The pre-built tokens and scopes are not the stacks' garbage: keep them out of GC passes.
    gc.collect()
    gc.freeze()
    warm_s = await compare(warm_variants, n, rounds)
    cold_s = await compare(cold_variants, cold_n, rounds)

    rows = []
    for name in apps:
        cold_ratio = f"{ratio(cold_s, name, 'floor'):.2f}x" if name != "bare" else "-"
        rows.append(
            (
                name,
                f"{median(warm_s[name]):.1f}",
                f"{added(warm_s, name):+.1f}",
                f"{median(cold_s[name]):.1f}",
                f"{added(cold_s, name):+.1f}",
                cold_ratio,
            )
        )
    out = [table(rows, ("stack", "warm µs/req", "warm added", "cold µs/req", "cold added", "cold added / RS256"))]
    ours_w, ours_c = added(warm_s, "ours"), ratio(cold_s, "ours", "floor")
    out.append(f"\nraw RS256 verify (cryptography), same run: {median(cold_s['floor']):.1f} µs")
    out.append(
        f"warm floor, same run: a middleware that only reads the header, hashes the token, looks it up"
        f" and attaches it adds {added(warm_s, 'hash+lookup floor'):.2f} µs"
    )
    out.append(f"target warm added <= 5 µs: {ours_w:.2f} µs -> {'PASS' if ours_w <= 5 else 'FAIL'}")
    out.append(f"target cold added <= 2.5x RS256: {ours_c:.2f}x -> {'PASS' if ours_c <= 2.5 else 'FAIL'}")
    for peer in ("fastmcp", "mcp-sdk"):
        for label, samples in (("warm", warm_s), ("cold", cold_s)):
            out.append(
                f"{label}: {peer} adds {added(samples, peer):.1f} µs, ours {added(samples, 'ours'):.1f} µs"
                f" -> ours is {added(samples, peer) / added(samples, 'ours'):.1f}x cheaper"
            )
    return "\n".join(out)


async def sanity() -> None:
    """Every stack really rejects a bad token, so we compare working auth layers."""
    issuer = LocalIssuer(ISSUER)
    for build in (ours, fastmcp, mcp_sdk):
        call = Call(build(issuer))
        assert await call(http_scope(headers=[(b"authorization", b"Bearer nope")])) == 401, build
        good = issuer.mint_token(audience=RESOURCE, scopes=["mcp"])
        assert await call(http_scope(headers=[(b"authorization", f"Bearer {good}".encode())])) == 200, build


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=25)
    args = parser.parse_args()
    asyncio.run(sanity())
    print(asyncio.run(run(args.n, args.rounds)))


if __name__ == "__main__":
    main()
