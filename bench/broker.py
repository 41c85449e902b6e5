"""The broker's costs, in one run, with node oidc-provider (the Entra-like one the tests use)
behind it on 127.0.0.1:

  sign-in     the round trips of a first sign-in (consent, the provider's login) and of a
              second one in the same browser (consent remembered, the provider's session),
              each counted by leg, and their wall time on loopback; a refresh's time
  per request the middleware with `broker=` against the same middleware validating the same
              tokens as any JWT issuer's (`JWTValidator` with the broker's public keys as
              static keys), warm (one token) and cold (a new token each request), and one
              raw ES256 verify; CPU time, interleaved rounds, ratios taken per round

    python bench/broker.py [--sign-ins 10] [--n 1000] [--rounds 15]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gc
import hashlib
import html
import json
import os
import re
import secrets
import shutil
import statistics
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit

import httpx2
from common import (
    Call,
    added,
    client_headers,
    compare,
    differences,
    http_scope,
    median,
    ratio_summary,
    started,
    table,
)
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from joserfc.jwk import RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mcp_auth_middleware import JWTValidator, MCPAuthMiddleware
from mcp_auth_middleware.broker import Broker, BrokerClient
from mcp_auth_middleware.broker.providers import oidc
from mcp_auth_middleware.testing import free_port

OIDC_DIR = Path(__file__).resolve().parents[1] / "tests" / "interop" / "oidc_provider"
SECRET = "bench-" + "s" * 40
TENANT = "bench-tenant"
REDIRECT = "http://127.0.0.1:5555/callback"


def start_provider(port: int, callback: str) -> subprocess.Popen[bytes]:
    node = shutil.which("node")
    if node is None or not (OIDC_DIR / "node_modules" / "oidc-provider").is_dir():
        raise SystemExit("node and tests/interop/oidc_provider's packages are needed (make test installs them)")
    key = RSAKey.generate_key(2048, parameters={"kid": "bench", "use": "sig", "alg": "RS256"})
    env = {**os.environ, "PORT": str(port), "REDIRECT_URI": callback, "TENANT": TENANT, "NODE_ENV": "test",
           "JWKS": json.dumps({"keys": [key.as_dict(private=True)]})}  # fmt: skip
    process = subprocess.Popen([node, "entra_like.mjs"], cwd=OIDC_DIR, env=env, stdout=subprocess.DEVNULL)
    return started(process, port, "oidc-provider")


class Browser:
    """A user's browser: the broker's cookie and consent form, the provider's login and consent
    pages (oidc-provider's development ones), counting each request by where it went."""

    def __init__(self, broker_http: httpx2.AsyncClient, provider_origin: str) -> None:
        self.broker_http, self.provider_origin = broker_http, provider_origin
        self.provider_http = httpx2.AsyncClient(timeout=20)
        self.cookie = ""
        self.trips: Counter[str] = Counter()

    async def to_broker(self, method: str, url: str, **kwargs: Any) -> httpx2.Response:
        self.trips["browser -> broker"] += 1
        headers = {"cookie": self.cookie, **kwargs.pop("headers", {})}
        response = await self.broker_http.request(method, url, headers=headers, **kwargs)
        for value in response.headers.get_list("set-cookie"):
            self.cookie = value.split(";")[0]
        return response

    async def sign_in(self, url: str, issuer: str, origin: str) -> dict[str, str]:
        response = await self.to_broker("GET", url)
        if response.status_code == 200:  # the consent page
            csrf = html.unescape(re.search(r'name="csrf" value="([^"]+)"', response.text).group(1))  # type: ignore[union-attr]
            action = html.unescape(re.search(r'action="([^"]+)"', response.text).group(1))  # type: ignore[union-attr]
            response = await self.to_broker("POST", urljoin(issuer + "/", action),
                                            data={"csrf": csrf, "decision": "approve"},
                                            headers={"origin": origin})  # fmt: skip
        location = response.headers["location"]
        while location.startswith(self.provider_origin):
            self.trips["browser -> provider"] += 1
            response = await self.provider_http.get(location)
            while response.status_code == 200:  # a login or consent page of the provider
                self.trips["browser -> provider"] += 1
                form = (
                    {"prompt": "login", "login": "alice", "password": "x"}
                    if 'name="login"' in response.text
                    else {"prompt": "consent"}
                )
                response = await self.provider_http.post(str(response.url), data=form)
            location = urljoin(str(response.url), response.headers["location"])
        if location.startswith(issuer + "/callback"):
            response = await self.to_broker("GET", location)
            location = response.headers["location"]
        return dict(parse_qsl(urlsplit(location).query))


async def endpoint(request: Request) -> Response:
    return Response(b'{"ok":true}', media_type="application/json")


def bare_app() -> Starlette:
    return Starlette(routes=[Route("/mcp", endpoint, methods=["POST"])])


async def run(sign_ins: int, n: int, rounds: int) -> str:
    port = free_port()
    origin = f"http://127.0.0.1:{port}"
    issuer = f"{origin}/oauth"
    resource = f"{origin}/mcp"
    provider_port = free_port()
    process = start_provider(provider_port, f"{issuer}/callback")
    folder = tempfile.mkdtemp()
    try:
        upstream = oidc(f"http://127.0.0.1:{provider_port}/{TENANT}/v2.0", "broker", "broker-secret", allow_http=True)
        broker = Broker.of(issuer, upstream, [resource], [SECRET], storage=f"{folder}/broker.db",
                           clients=(BrokerClient.preregistered("cli", ["http://127.0.0.1/callback"]),))  # fmt: skip
        upstream_trips = Counter[str]()

        async def count(request: httpx2.Request) -> None:
            upstream_trips[request.url.path.rsplit("/", 1)[-1]] += 1

        (await broker._provider())._http.event_hooks["request"].append(count)  # bench only: count the leg
        broker_http = httpx2.AsyncClient(transport=httpx2.ASGITransport(app=broker.app), base_url=origin, timeout=20)
        timings: dict[str, list[float]] = {"first sign-in": [], "second sign-in": [], "refresh": []}
        trips: dict[str, Counter[str]] = {}
        refresh_token = ""
        for _ in range(sign_ins):
            browser = Browser(broker_http, f"http://127.0.0.1:{provider_port}")
            for which in ("first sign-in", "second sign-in"):
                verifier = secrets.token_urlsafe(48)
                challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
                query = {"response_type": "code", "client_id": "cli", "redirect_uri": REDIRECT, "state": "s",
                         "code_challenge": challenge, "code_challenge_method": "S256", "scope": "mcp"}  # fmt: skip
                browser.trips.clear()
                upstream_trips.clear()
                started = time.perf_counter()
                answer = await browser.sign_in(f"{issuer}/authorize?{urlencode(query)}", issuer, origin)
                tokens = await broker_http.post(f"{issuer}/token", data={
                    "grant_type": "authorization_code", "code": answer["code"], "code_verifier": verifier,
                    "client_id": "cli", "redirect_uri": REDIRECT})  # fmt: skip
                timings[which].append((time.perf_counter() - started) * 1000)
                trips[which] = (
                    browser.trips
                    + Counter({"client -> broker (token)": 1})
                    + Counter({f"broker -> provider ({k})": v for k, v in upstream_trips.items()})
                )
                refresh_token = tokens.json()["refresh_token"]
            await browser.provider_http.aclose()

        # Tokens for the per-request comparison: each refresh a new one (and a timing).
        cold_n = max(100, n // 4)
        access_tokens = []
        for _ in range(cold_n * rounds + max(50, cold_n // 10)):
            started = time.perf_counter()
            answer = (await broker_http.post(f"{issuer}/token", data={
                "grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": "cli"})).json()  # fmt: skip
            timings["refresh"].append((time.perf_counter() - started) * 1000)
            refresh_token, access_token = answer["refresh_token"], answer["access_token"]
            access_tokens.append(access_token)
        await broker_http.aclose()

        jwks = await broker.keys.jwks()
        as_any_issuer = JWTValidator(issuer=issuer, keys=jwks, algorithms=["ES256"], require_at_jwt=True)
        stacks = {
            "bare": bare_app(),
            "broker=": MCPAuthMiddleware(bare_app(), resource=resource, broker=broker, required_scopes=["mcp"]),
            "any JWT issuer": MCPAuthMiddleware(
                bare_app(),
                resource=resource,
                validator=as_any_issuer,
                authorization_servers=[issuer],
                required_scopes=["mcp"],
            ),
        }
        public = ec.EllipticCurvePublicNumbers(
            int.from_bytes(base64.urlsafe_b64decode(jwks["keys"][0]["x"] + "==")),
            int.from_bytes(base64.urlsafe_b64decode(jwks["keys"][0]["y"] + "==")),
            ec.SECP256R1(),
        ).public_key()
        raw = []
        for token in access_tokens:
            signing_input, _, signature = token.rpartition(".")
            sig = base64.urlsafe_b64decode(signature + "==")
            raw.append(
                (signing_input.encode(), encode_dss_signature(int.from_bytes(sig[:32]), int.from_bytes(sig[32:])))
            )

        def warm(app: Any) -> Any:
            call, scope = Call(app), http_scope(headers=client_headers(access_tokens[-1]))

            async def fn(i: int) -> None:
                assert await call(scope) == 200

            return fn

        def cold(app: Any) -> Any:
            call = Call(app)
            scopes = [http_scope(headers=client_headers(t)) for t in access_tokens]
            counter = iter(range(len(scopes)))

            async def fn(i: int) -> None:
                assert await call(scopes[next(counter)]) == 200

            return fn

        def raw_verify() -> Any:
            counter = iter(range(len(raw)))

            async def fn(i: int) -> None:
                signing_input, signature = raw[next(counter)]
                public.verify(signature, signing_input, ec.ECDSA(hashes.SHA256()))

            return fn

        gc.collect()
        gc.freeze()
        w = await compare({name: warm(app) for name, app in stacks.items()}, n, rounds)
        c = await compare({**{name: cold(app) for name, app in stacks.items()}, "raw ES256 verify": raw_verify()},
                          cold_n, rounds)  # fmt: skip
        await broker.aclose()
    finally:
        process.terminate()
        process.wait(10)
        shutil.rmtree(folder, ignore_errors=True)

    first, second = trips["first sign-in"], trips["second sign-in"]
    legs = sorted(set(first) | set(second))
    trip_rows = [(leg, str(first[leg]), str(second[leg])) for leg in legs]
    trip_rows.append(("total", str(sum(first.values())), str(sum(second.values()))))
    time_rows = [(name, f"{statistics.median(v):.1f}", f"{min(v):.1f}", str(len(v))) for name, v in timings.items()]

    def per_request(name: str) -> tuple[str, ...]:
        warm_added = f"{added(w, name):+.1f}" if name != "bare" else ""
        cold_added = f"{added(c, name):+.1f}" if name != "bare" else ""
        return (name, f"{median(w[name]):.1f}", warm_added, f"{median(c[name]):.1f}", cold_added)

    request_rows = [per_request(name) for name in stacks]
    request_rows.append(("raw ES256 verify, alone", "", "", f"{median(c['raw ES256 verify']):.1f}", ""))
    warm_ratio = ratio_summary(differences(w, "broker="), differences(w, "any JWT issuer"))
    cold_ratio = ratio_summary(differences(c, "broker="), differences(c, "any JWT issuer"))
    verify_ratio = ratio_summary(differences(c, "broker="), c["raw ES256 verify"])
    return "\n".join(
        [
            "Sign-in round trips (the first with consent and the provider's login; the second in the same",
            "browser: consent remembered, the provider's session), and wall time on loopback:",
            "",
            table(trip_rows, ("round trip", "first sign-in", "second sign-in")),
            "",
            table(time_rows, ("step", "median ms", "min ms", "runs")),
            "",
            "Per request (CPU µs, median over rounds; added: the stack minus bare, in the same round):",
            table(request_rows, ("stack", "warm µs", "warm added", "cold µs", "cold added")),
            "",
            "ratios, each within one round:",
            f"  warm added, broker= / any JWT issuer:       {warm_ratio[1]}",
            f"  cold added, broker= / any JWT issuer:       {cold_ratio[1]}",
            f"  cold added, broker= / one raw ES256 verify: {verify_ratio[1]}",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sign-ins", type=int, default=10)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    print(asyncio.run(run(args.sign_ins, args.n, args.rounds)))


if __name__ == "__main__":
    main()
