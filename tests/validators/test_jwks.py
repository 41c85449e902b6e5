"""JWKSKeys against a real JWKS server on 127.0.0.1: caching, rotation, floods, outages, garbage."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mcp_auth_middleware import (
    AuthorizationServerUnavailableError,
    ConfigurationError,
    InvalidTokenError,
    JWKSKeys,
    JWTValidator,
)
from mcp_auth_middleware.testing import LocalIssuer, serve

ISS = "https://auth.example.com"
AUD = "https://mcp.example.com/mcp"


class JWKSServer:
    """A JWKS endpoint whose answer the test controls."""

    def __init__(self) -> None:
        self.jwks: dict[str, Any] = {"keys": []}
        self.status = 200
        self.body: bytes | None = None
        self.delay = 0.0
        self.cache_control = "max-age=300"
        self.hits = 0
        self._lock = threading.Lock()
        self.app = Starlette(routes=[Route("/jwks", self.handle)])
        self.url = ""

    async def handle(self, request: Request) -> Response:
        with self._lock:
            self.hits += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        import json

        body = self.body if self.body is not None else json.dumps(self.jwks).encode()
        return Response(
            body, status_code=self.status, media_type="application/json", headers={"cache-control": self.cache_control}
        )


@pytest.fixture(scope="module")
def jwks_server() -> Iterator[JWKSServer]:
    server = JWKSServer()
    with serve(server.app) as base:
        server.url = base + "/jwks"
        yield server


@pytest.fixture
def jwks(jwks_server: JWKSServer) -> JWKSServer:
    jwks_server.jwks, jwks_server.status, jwks_server.body = {"keys": []}, 200, None
    jwks_server.delay, jwks_server.cache_control, jwks_server.hits = 0.0, "max-age=300", 0
    return jwks_server


def make_validator(url: str, **options: Any) -> tuple[JWTValidator, JWKSKeys]:
    keys = JWKSKeys(url, **options)
    return JWTValidator(issuer=ISS, audience=AUD, key_source=keys), keys


async def test_keys_fetched_once_and_cached(jwks: JWKSServer) -> None:
    issuer = LocalIssuer(ISS)
    jwks.jwks = issuer.jwks
    validator, _ = make_validator(jwks.url)
    for i in range(5):
        assert (await validator.validate(issuer.mint_token(audience=AUD, sub=f"u{i}"))).sub == f"u{i}"
    assert jwks.hits == 1


async def test_concurrent_first_requests_share_one_fetch(jwks: JWKSServer) -> None:
    issuer = LocalIssuer(ISS)
    jwks.jwks, jwks.delay = issuer.jwks, 0.2
    validator, _ = make_validator(jwks.url)
    tokens = [issuer.mint_token(audience=AUD, sub=f"u{i}") for i in range(50)]
    results = await asyncio.gather(*(validator.validate(t) for t in tokens))
    assert {r.sub for r in results} == {f"u{i}" for i in range(50)}
    assert jwks.hits == 1


async def test_key_rotation_unknown_kid_triggers_refresh(jwks: JWKSServer) -> None:
    old, new = LocalIssuer(ISS, kid="old"), LocalIssuer(ISS, kid="new")
    jwks.jwks = old.jwks
    validator, _ = make_validator(jwks.url, refresh_cooldown=0.0)
    assert await validator.validate(old.mint_token(audience=AUD))
    jwks.jwks = {"keys": old.jwks["keys"] + new.jwks["keys"]}  # the AS rotates
    assert (await validator.validate(new.mint_token(audience=AUD, sub="rotated"))).sub == "rotated"
    assert jwks.hits == 2


async def test_flood_of_random_kids_is_one_fetch_per_cooldown(jwks: JWKSServer) -> None:
    issuer = LocalIssuer(ISS, kid="real")
    jwks.jwks = issuer.jwks
    validator, _ = make_validator(jwks.url, refresh_cooldown=0.5)
    assert await validator.validate(issuer.mint_token(audience=AUD))
    attacker = LocalIssuer(ISS)
    forged = [attacker.mint_token(audience=AUD, header={"kid": f"random-{i}"}) for i in range(100)]
    started = time.monotonic()
    results = await asyncio.gather(*(validator.validate(t) for t in forged), return_exceptions=True)
    assert all(isinstance(r, InvalidTokenError) for r in results)
    assert jwks.hits == 2  # the first fetch, then one shared refetch after the cooldown
    assert time.monotonic() - started < 5


async def test_new_kid_inside_the_cooldown_waits_for_one_refetch(
    jwks: JWKSServer, caplog: pytest.LogCaptureFixture
) -> None:
    # The AS rotates right after our last fetch: the token with the new kid is not refused for
    # the rest of the cooldown, it waits for one refetch (RFC 7517 key rotation).
    old, new = LocalIssuer(ISS, kid="old"), LocalIssuer(ISS, kid="new")
    jwks.jwks = old.jwks
    validator, _ = make_validator(jwks.url, refresh_cooldown=0.5)
    assert await validator.validate(old.mint_token(audience=AUD))
    jwks.jwks = {"keys": old.jwks["keys"] + new.jwks["keys"]}
    assert (await validator.validate(new.mint_token(audience=AUD, sub="rotated"))).sub == "rotated"
    assert jwks.hits == 2
    with pytest.raises(InvalidTokenError) as unknown:
        await validator.validate(LocalIssuer(ISS, kid="gone").mint_token(audience=AUD))
    assert unknown.value.detail == "no RSA key with key id 'gone' in the JWKS, also after fetching it again"
    assert unknown.value.mismatch and unknown.value.guess


async def test_key_replaced_under_the_same_kid_gets_one_refetch(jwks: JWKSServer) -> None:
    before, after = LocalIssuer(ISS, kid="k1"), LocalIssuer(ISS, kid="k1")  # same id, new key
    jwks.jwks = before.jwks
    validator, _ = make_validator(jwks.url, refresh_cooldown=0.2)
    assert await validator.validate(before.mint_token(audience=AUD))
    jwks.jwks = after.jwks
    assert (await validator.validate(after.mint_token(audience=AUD, sub="replaced"))).sub == "replaced"
    assert jwks.hits == 2
    tampered = before.mint_token(audience=AUD)  # the old key's signature no longer verifies
    with pytest.raises(InvalidTokenError) as refused:
        await validator.validate(tampered)
    assert (
        refused.value.detail
        == "key id 'k1' is in the JWKS, also after fetching it again, but the signature does not verify with it"
    )
    assert jwks.hits == 3 and not refused.value.mismatch


async def test_failed_refresh_keeps_last_good_keys(jwks: JWKSServer) -> None:
    issuer = LocalIssuer(ISS)
    jwks.jwks = issuer.jwks
    validator, _ = make_validator(jwks.url, min_ttl=0.0, retry_interval=0.0)
    jwks.cache_control = "max-age=0"
    assert await validator.validate(issuer.mint_token(audience=AUD))
    jwks.status = 500
    assert await validator.validate(issuer.mint_token(audience=AUD, sub="still-ok"))
    assert jwks.hits >= 2  # it did try again


async def test_stale_keys_expire_after_max_stale(jwks: JWKSServer) -> None:
    issuer = LocalIssuer(ISS)
    jwks.jwks, jwks.cache_control = issuer.jwks, "max-age=0"
    validator, _ = make_validator(jwks.url, min_ttl=0.0, retry_interval=0.0, max_stale=0.3)
    assert await validator.validate(issuer.mint_token(audience=AUD))
    jwks.status = 503
    await asyncio.sleep(0.4)
    with pytest.raises(AuthorizationServerUnavailableError):
        await validator.validate(issuer.mint_token(audience=AUD, sub="late"))


@pytest.mark.parametrize(
    ("status", "body", "detail"),
    [
        (200, b"<html>not json</html>", "served application/json, not JSON: an HTML page"),
        (200, b"[1, 2]", "not a JWKS document"),
        (200, b'{"keys": "nope"}', "not a JWKS document"),
        (302, b"", "answered HTTP 302"),
        (404, b"", "answered HTTP 404"),
        (
            200,
            b'{"keys": [' + b'{"kty": "RSA"},' * 10 + b'{"kty": "oct", "k": "c2VjcmV0", "use": "sig"}]}',
            "none of its 11 keys is a public signature key we accept",
        ),
    ],
)
async def test_an_unusable_key_set_is_a_misconfiguration(
    jwks: JWKSServer, status: int, body: bytes, detail: str
) -> None:
    # The server answered, and the answer cannot work: 503 without Retry-After, saying why.
    jwks.status, jwks.body = status, body
    validator, _ = make_validator(jwks.url)
    with pytest.raises(ConfigurationError) as caught:
        await validator.validate(LocalIssuer(ISS).mint_token(audience=AUD))
    assert detail in str(caught.value.detail) and jwks.url in str(caught.value.detail)


@pytest.mark.parametrize("status", [500, 503, 429])
async def test_server_errors_before_first_fetch_are_an_outage(jwks: JWKSServer, status: int) -> None:
    jwks.status, jwks.body = status, b"oops"
    validator, _ = make_validator(jwks.url)
    with pytest.raises(AuthorizationServerUnavailableError) as caught:
        await validator.validate(LocalIssuer(ISS).mint_token(audience=AUD))
    assert caught.value.retry_after >= 1 and f"answered HTTP {status}" in str(caught.value.detail)


async def test_hanging_endpoint_bounded_by_timeout(jwks: JWKSServer) -> None:
    jwks.jwks, jwks.delay = LocalIssuer(ISS).jwks, 1.5
    validator, _ = make_validator(jwks.url, timeout=0.3)
    started = time.monotonic()
    with pytest.raises(AuthorizationServerUnavailableError):
        await validator.validate(LocalIssuer(ISS).mint_token(audience=AUD))
    assert time.monotonic() - started < 2.0


async def test_oversized_jwks_refused(jwks: JWKSServer) -> None:
    jwks.body = b'{"keys": [], "pad": "' + b"x" * 200_000 + b'"}'
    validator, _ = make_validator(jwks.url, max_bytes=50_000)
    with pytest.raises(ConfigurationError) as caught:  # raise max_bytes if your key set is that large
        await validator.validate(LocalIssuer(ISS).mint_token(audience=AUD))
    assert "response larger than 50000 bytes" in str(caught.value.detail)


async def test_failure_backoff_does_not_hammer_a_down_endpoint(jwks: JWKSServer) -> None:
    jwks.status = 500
    validator, _ = make_validator(jwks.url, retry_interval=30.0)
    token = LocalIssuer(ISS).mint_token(audience=AUD)
    for _ in range(20):
        with pytest.raises(AuthorizationServerUnavailableError):
            await validator.validate(token)
    assert jwks.hits == 1


def test_max_age_bounded() -> None:
    keys = JWKSKeys("https://auth.example.com/jwks", min_ttl=60, max_ttl=3600, default_ttl=300)
    assert keys._ttl("public, max-age=120") == 120
    assert keys._ttl("max-age=5") == 60
    assert keys._ttl("max-age=999999") == 3600
    assert keys._ttl("no-cache") == 300


async def test_waiter_cancellation_does_not_cancel_shared_fetch(jwks: JWKSServer) -> None:
    issuer = LocalIssuer(ISS)
    jwks.jwks, jwks.delay = issuer.jwks, 0.3
    validator, _ = make_validator(jwks.url)
    impatient = asyncio.ensure_future(validator.validate(issuer.mint_token(audience=AUD)))
    patient = asyncio.ensure_future(validator.validate(issuer.mint_token(audience=AUD, sub="patient")))
    await asyncio.sleep(0.05)
    impatient.cancel()
    assert (await patient).sub == "patient"
    assert jwks.hits == 1
