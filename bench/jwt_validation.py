"""Local JWT validation, side by side in one run.

Stacks, all around the same Starlette route, called in-process:
  bare      the route alone
  ours      MCPAuthMiddleware + JWTValidator (static key)
  fastmcp   FastMCP's RemoteAuthProvider + JWTVerifier (static key), wired as FastMCP wires it
  mcp-sdk   the MCP SDK's AuthenticationMiddleware(BearerAuthBackend) + RequireAuthMiddleware,
            with a PyJWT TokenVerifier
Streams: warm (one token reused) and cold (a new token on every request). Floors, timed in
the same rounds as ours: for warm, a middleware that only hashes the token, looks it up and
attaches it; for cold, one raw `cryptography` RS256 verify of the same tokens, alone in a loop
and as the only thing a middleware adds to a request, and the least JWT middleware.

    python bench/jwt_validation.py [--n 1000] [--rounds 25]

Many short rounds, each running every stack in turn: on a shared VM the machine's speed
drifts, and a ratio taken within one short round is what stays comparable.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gc
import json
import time
from typing import Any

import jwt as pyjwt
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


def least_jwt_middleware(app: Any, issuer: LocalIssuer) -> Any:
    """The least a JWT middleware can do: the hash+lookup floor, and for a new token: split
    it, verify the RS256 signature with `cryptography`, parse the claims, compare iss, aud and
    exp. No typ/alg/kid checks, no other claims, no challenge, no metrics."""
    public = load_pem_public_key(issuer.key.as_pem(private=False))
    assert isinstance(public, rsa.RSAPublicKey)
    pkcs1, sha256 = padding.PKCS1v15(), hashes.SHA256()

    async def verify(token: bytes) -> Any:
        _, payload, signature = token.split(b".")
        signing_input = token[: len(token) - len(signature) - 1]
        public.verify(base64.urlsafe_b64decode(signature + b"=" * (-len(signature) % 4)), signing_input, pkcs1, sha256)
        claims = json.loads(base64.urlsafe_b64decode(payload + b"=" * (-len(payload) % 4)))
        assert claims["iss"] == ISSUER and claims["aud"] == RESOURCE and claims["exp"] > time.time()
        return claims

    return hash_lookup_floor(app, on_miss=verify)


def signed_parts(tokens: list[str]) -> dict[bytes, tuple[bytes, bytes]]:
    """Each token's Authorization value -> its signing input and decoded signature: what no
    stack can avoid verifying."""
    parts = (t.rsplit(".", 1) for t in tokens)
    return {
        f"Bearer {i}.{s}".encode(): (i.encode(), base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))) for i, s in parts
    }


def verify_in_request(app: Any, issuer: LocalIssuer, tokens: list[str]) -> Any:
    """One raw RS256 verify with `cryptography` (the key loaded once) as the only thing a
    middleware adds to the request: what one verify costs where a middleware's verify runs,
    between the app's requests. Knows `tokens` only."""
    public = load_pem_public_key(issuer.key.as_pem(private=False))
    assert isinstance(public, rsa.RSAPublicKey)
    signed = signed_parts(tokens)

    async def middleware(scope: Any, receive: Any, send: Any) -> None:
        for name, value in scope["headers"]:
            if name == b"authorization":
                signing_input, signature = signed[value]
        public.verify(signature, signing_input, padding.PKCS1v15(), hashes.SHA256())
        await app(scope, receive, send)

    return middleware


async def run(n: int, rounds: int) -> str:
    issuer = LocalIssuer(ISSUER)
    warm_token = issuer.mint_token(audience=RESOURCE, scopes=["mcp"])
    cold_n = max(100, n // 4)
    cold_tokens = [
        issuer.mint_token(audience=RESOURCE, scopes=["mcp"], sub=f"user-{i}")
        for i in range(cold_n * rounds + max(50, cold_n // 10))
    ]
    public = load_pem_public_key(issuer.key.as_pem(private=False))
    assert isinstance(public, rsa.RSAPublicKey)
    decoded = list(signed_parts(cold_tokens).values())

    def warm(app: Any) -> Any:
        call, scope = Call(app), http_scope(headers=client_headers(warm_token))

        async def fn(i: int) -> None:
            assert await call(scope) == 200

        return fn

    def cold(app: Any) -> Any:
        call = Call(app)
        scopes = [http_scope(headers=client_headers(t)) for t in cold_tokens]
        counter = iter(range(len(scopes)))

        async def fn(i: int) -> None:
            assert await call(scopes[next(counter)]) == 200

        return fn

    def raw_verify() -> Any:
        """One raw RS256 verify with `cryptography` (the key loaded once, from its PEM, as a
        resource server and each peer holds it), alone in a loop."""
        counter = iter(range(len(decoded)))

        async def fn(i: int) -> None:
            signing_input, signature = decoded[next(counter)]
            public.verify(signature, signing_input, padding.PKCS1v15(), hashes.SHA256())

        return fn

    # The floors and ours in rounds of their own; the peers, which cost 20 times as much, in
    # others, so that their work does not land in the caches between ours and the floors.
    floors_warm = {
        "bare": warm(bare_app()),
        "hash+lookup floor": warm(hash_lookup_floor(bare_app(), warm_token)),
        "ours": warm(ours(issuer)),
    }
    floors_cold = {
        "raw verify": raw_verify(),
        "bare": cold(bare_app()),
        "raw verify in a request": cold(verify_in_request(bare_app(), issuer, cold_tokens)),
        "least JWT middleware": cold(least_jwt_middleware(bare_app(), issuer)),
        "ours": cold(ours(issuer)),
    }
    peer_apps = {"bare": bare_app(), "ours": ours(issuer), "fastmcp": fastmcp(issuer), "mcp-sdk": mcp_sdk(issuer)}
    # The pre-built tokens and scopes are not the stacks' garbage: keep them out of GC passes.
    gc.collect()
    gc.freeze()
    fw = await compare(floors_warm, n, rounds)
    fc = await compare(floors_cold, cold_n, rounds)
    pw = await compare({name: warm(app) for name, app in peer_apps.items()}, n, rounds)
    pc = await compare({name: cold(app) for name, app in peer_apps.items()}, cold_n, rounds)

    header = ("stack", "warm µs/req", "warm added", "cold µs/req", "cold added")

    def row(name: str, warm_s: dict[str, list[float]], cold_s: dict[str, list[float]]) -> tuple[str, ...]:
        cells = [
            (f"{median(s[name]):.1f}", f"{added(s, name):+.1f}") if name in s else ("", "") for s in (warm_s, cold_s)
        ]
        return (name, *cells[0], *cells[1])

    floor_names = ["bare", "ours", "hash+lookup floor", "least JWT middleware", "raw verify in a request"]
    out = [
        "Against the floors (their own rounds):",
        table(
            [row(name, fw, fc) for name in floor_names]
            + [("raw verify alone", "", "", f"{median(fc['raw verify']):.1f}", "")],
            header,
        ),
        "",
        "Against the peers (their own rounds):",
        table([row(name, pw, pc) for name in peer_apps], header),
    ]
    ours_warm, ours_cold = differences(fw, "ours"), differences(fc, "ours")
    warm = ratio_summary(ours_warm, differences(fw, "hash+lookup floor"))
    alone = ratio_summary(ours_cold, fc["raw verify"])
    in_request = ratio_summary(ours_cold, differences(fc, "raw verify in a request"))
    least = ratio_summary(ours_cold, differences(fc, "least JWT middleware"))
    out += [
        "",
        "ratios, each taken within one round (median over rounds, and the middle half of the rounds):",
        f"  warm added / hash+lookup floor:                 {warm[1]}  {verdict(warm[0], 2.0, 1.5)}",
        f"  cold added / one raw RS256 verify, alone:       {alone[1]}  {verdict(alone[0], 2.5, 2.0)}",
        f"  cold added / one raw RS256 verify in a request: {in_request[1]}  {verdict(in_request[0], 2.5, 2.0)}",
        f"  cold added / least JWT middleware:              {least[1]}",
    ]
    for peer in ("fastmcp", "mcp-sdk"):
        for label, samples in (("warm", pw), ("cold", pc)):
            out.append(
                f"  {label}: {peer} adds {added(samples, peer):.1f} µs, ours {added(samples, 'ours'):.1f} µs"
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
        assert await call(http_scope(headers=client_headers(good))) == 200, build


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=25)
    args = parser.parse_args()
    asyncio.run(sanity())
    print(asyncio.run(run(args.n, args.rounds)))


if __name__ == "__main__":
    main()
