"""What the broker accepts from a provider's token endpoint, against a hostile one (a Starlette
app on uvicorn, answering with the ID token each test forges): the ID token must be signed by a
key of the provider's JWKS with an asymmetric algorithm, for this client, from this issuer, with
this sign-in's nonce, unexpired (OpenID Connect Core 1.0 §3.1.3.7); headers naming other keys
(`jku`, `jwk`) change nothing; a broken answer is a clear ProviderError, never a crash."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from mcp_auth_middleware.broker.upstream import ProviderError, Upstream
from mcp_auth_middleware.testing import free_port, serve

KEY = RSAKey.generate_key(2048, parameters={"kid": "k1"})
ATTACKER = RSAKey.generate_key(2048, parameters={"kid": "k1"})
REDIRECT = "http://127.0.0.1:1/callback"


class Provider:
    def __init__(self, port: int) -> None:
        self.issuer = f"http://127.0.0.1:{port}"
        self.answer: Any = None

    def app(self) -> Starlette:
        async def metadata(request: Request) -> Response:
            return JSONResponse(
                {
                    "issuer": self.issuer,
                    "authorization_endpoint": f"{self.issuer}/authorize",
                    "token_endpoint": f"{self.issuer}/token",
                    "jwks_uri": f"{self.issuer}/jwks",
                }
            )

        async def jwks(request: Request) -> Response:
            return JSONResponse({"keys": [KEY.as_dict(private=False)]})

        async def token(request: Request) -> Response:
            return self.answer if isinstance(self.answer, Response) else JSONResponse(self.answer)

        return Starlette(
            routes=[
                Route("/.well-known/openid-configuration", metadata),
                Route("/jwks", jwks),
                Route("/token", token, methods=["POST"]),
            ]
        )


@pytest.fixture(scope="module")
def provider() -> Iterator[Provider]:
    port = free_port()
    hostile = Provider(port)
    with serve(hostile.app(), port=port):
        yield hostile


def hs256_with_the_public_key(claims: dict[str, Any]) -> str:
    """The algorithm-confusion forgery: HMAC keyed with the provider's public key (published)."""

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signing_input = f"{b64(json.dumps({'alg': 'HS256', 'kid': 'k1'}).encode())}.{b64(json.dumps(claims).encode())}"
    signature = hmac.new(KEY.as_pem(private=False), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


def id_token(
    provider: Provider, nonce: str, *, key: Any = KEY, header: dict[str, Any] | None = None, **claims: Any
) -> str:
    now = int(time.time())
    payload = {"iss": provider.issuer, "aud": "broker", "sub": "alice", "iat": now, "exp": now + 300, "nonce": nonce}
    return jwt.encode({"alg": "RS256", "kid": "k1", **(header or {})}, payload | claims, key)


async def finish_with(provider: Provider, answer: Any) -> Any:
    upstream = await Upstream.discover(provider.issuer, "broker", "secret")
    _, pending = upstream.start(REDIRECT)
    provider.answer = answer if isinstance(answer, Response) or not callable(answer) else answer(pending.nonce)
    return await upstream.finish({"state": pending.state, "code": "c"}, pending)


async def test_a_good_id_token_signs_in(provider: Provider) -> None:
    grant = await finish_with(provider, lambda nonce: {"access_token": "a", "id_token": id_token(provider, nonce)})
    assert grant.subject == "alice" and grant.access_token == "a" and grant.refresh_token is None


@pytest.mark.parametrize(
    ("forge", "problem"),
    [
        (lambda p, n: id_token(p, "another sign-in's nonce"), "nonce differs"),
        (lambda p, n: id_token(p, n, aud="another-client"), "aud"),
        (lambda p, n: id_token(p, n, iss="https://evil.example"), "iss"),
        (lambda p, n: id_token(p, n, exp=int(time.time()) - 3600), "expired"),
        (lambda p, n: id_token(p, n, sub=""), "no sub"),
        (lambda p, n: id_token(p, n, key=ATTACKER), "signature not verified"),
        (  # the attacker's key named in the token itself: never used
            lambda p, n: id_token(p, n, key=ATTACKER, header={"jwk": ATTACKER.as_dict(private=False)}),
            "signature not verified",
        ),
        (
            lambda p, n: id_token(p, n, key=ATTACKER, header={"jku": "http://127.0.0.1:1/attacker-jwks"}),
            "signature not verified",
        ),
        (  # HS256 keyed with the provider's public key: the algorithm is refused first
            lambda p, n: hs256_with_the_public_key(
                {"iss": p.issuer, "aud": "broker", "sub": "alice", "exp": int(time.time()) + 300, "nonce": n}
            ),
            "alg 'HS256' refused",
        ),
        (lambda p, n: "not.a.jwt", "ID token"),
    ],
)
async def test_forged_id_tokens_are_refused(provider: Provider, forge: Any, problem: str) -> None:
    with pytest.raises(ProviderError, match="not usable") as refused:
        await finish_with(provider, lambda nonce: {"access_token": "a", "id_token": forge(provider, nonce)})
    assert problem in refused.value.detail and not refused.value.unavailable


@pytest.mark.parametrize(
    ("answer", "reason", "unavailable"),
    [
        ({"access_token": "a"}, "incomplete", False),  # no id_token
        (JSONResponse({"error": "invalid_grant"}, status_code=400), "refused the sign-in", False),
        (JSONResponse({"error": "server_error"}, status_code=503), "refused the sign-in", True),
        (PlainTextResponse("<html>maintenance</html>", status_code=502), "not usable", True),
        ({"token_type": "Bearer"}, "refused the sign-in", False),  # no access_token
    ],
)
async def test_broken_token_answers_are_said_clearly(
    provider: Provider, answer: Any, reason: str, unavailable: bool
) -> None:
    with pytest.raises(ProviderError, match=reason) as failed:
        await finish_with(provider, answer)
    assert failed.value.unavailable is unavailable
