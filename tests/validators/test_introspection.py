"""IntrospectionValidator against real endpoints on 127.0.0.1: rules (RFC 7662 §2.2, §4), caching, outages."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from joserfc.jwk import RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mcp_auth_middleware import (
    AuthorizationServerUnavailableError,
    ConfigurationError,
    IntrospectionValidator,
    InvalidTokenError,
)
from mcp_auth_middleware.testing import running_authorization_server, serve

RESOURCE = "https://mcp.example.com/mcp"


class FakeAS:
    """An introspection endpoint whose answers the test sets."""

    def __init__(self) -> None:
        self.answer: Any = {}
        self.status = 200
        self.raw: bytes | None = None
        self.delay = 0.0
        self.calls = 0
        self.requests: list[tuple[dict[str, str], dict[str, str]]] = []
        self.lock = threading.Lock()
        self.url = ""
        self.app = Starlette(routes=[Route("/introspect", self.handle, methods=["POST"])])

    async def handle(self, request: Request) -> Response:
        with self.lock:
            self.calls += 1
        form = {k: str(v) for k, v in (await request.form()).items()}
        self.requests.append((dict(request.headers), form))
        if self.delay:
            await asyncio.sleep(self.delay)
        body = self.raw if self.raw is not None else json.dumps(self.answer).encode()
        return Response(body, status_code=self.status, media_type="application/json")


@pytest.fixture(scope="module")
def fake_server() -> Iterator[FakeAS]:
    fake = FakeAS()
    with serve(fake.app) as base:
        fake.url = base + "/introspect"
        yield fake


@pytest.fixture
def fake(fake_server: FakeAS) -> FakeAS:
    fake_server.answer = {
        "active": True,
        "aud": RESOURCE,
        "scope": "mcp read",
        "sub": "alice",
        "client_id": "app",
        "exp": int(time.time()) + 600,
        "iss": "https://as.example",
    }
    fake_server.status, fake_server.raw, fake_server.delay, fake_server.calls = 200, None, 0.0, 0
    fake_server.requests.clear()
    return fake_server


def validator(fake: FakeAS, **options: Any) -> IntrospectionValidator:
    options.setdefault("client_secret", "rs-secret")
    return IntrospectionValidator(fake.url, client_id="rs", audience=RESOURCE, **options)


async def test_active_token_maps_to_auth_info(fake: FakeAS) -> None:
    info = await validator(fake).validate("opaque-token-1")
    assert (info.sub, info.client_id, info.scopes) == ("alice", "app", frozenset({"mcp", "read"}))
    headers, form = fake.requests[0]
    assert form == {"token": "opaque-token-1", "token_type_hint": "access_token"}
    assert headers["authorization"] == "Basic " + base64.b64encode(b"rs:rs-secret").decode()


async def test_client_secret_post(fake: FakeAS) -> None:
    await validator(fake, auth_method="client_secret_post").validate("t")
    headers, form = fake.requests[0]
    assert "authorization" not in headers
    assert form["client_id"] == "rs" and form["client_secret"] == "rs-secret"


async def test_private_key_jwt(fake: FakeAS) -> None:
    key = RSAKey.generate_key(2048, parameters={"kid": "rs-key"})
    await validator(
        fake, auth_method="private_key_jwt", client_secret=None, private_key=key.as_pem(private=True).decode()
    ).validate("t")
    _, form = fake.requests[0]
    assert form["client_assertion_type"] == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    assert form["client_assertion"].count(".") == 2


@pytest.mark.parametrize(
    "answer",
    [
        {"active": False},
        {"active": "true", "aud": RESOURCE},
        {"aud": RESOURCE},
        [{"active": True}],
        "active",
        {"active": True, "aud": RESOURCE, "exp": "soon"},
        {"active": True, "aud": RESOURCE, "exp": True},
        {"active": True, "aud": RESOURCE, "exp": int(time.time()) - 300},
        {"active": True, "aud": RESOURCE, "nbf": int(time.time()) + 300},
        {"active": True, "aud": 7},
        {"active": True, "aud": "https://other.example/api"},
        {"active": True, "aud": "https://mcp.example.com/mcp/admin"},
        {"active": True},
        {"active": True, "aud": RESOURCE, "token_type": "refresh_token"},
        {"active": True, "aud": RESOURCE, "scope": ["mcp"]},
        {"active": True, "aud": RESOURCE, "iss": "https://evil.example"},
    ],
)
async def test_not_active_or_not_for_us_is_401(fake: FakeAS, answer: Any) -> None:
    fake.answer = answer
    with pytest.raises(InvalidTokenError):
        await validator(fake, issuer="https://as.example").validate("t")


async def test_missing_audience_allowed_only_when_opted_in(fake: FakeAS) -> None:
    fake.answer = {"active": True, "scope": "mcp", "sub": "alice"}
    assert (await validator(fake, allow_missing_audience=True).validate("t")).sub == "alice"


@pytest.mark.parametrize(
    ("status", "raw"),
    [(500, b"oops"), (503, b""), (200, b"<html>"), (200, b"{" + b" " * 100_000 + b"}")],
)
async def test_as_failures_are_503_never_401(fake: FakeAS, status: int, raw: bytes) -> None:
    fake.status, fake.raw = status, raw
    with pytest.raises(AuthorizationServerUnavailableError) as caught:
        await validator(fake, max_bytes=50_000).validate("t")
    assert caught.value.retry_after >= 1


@pytest.mark.parametrize(
    ("status", "says"),
    [(401, "refused this resource server's client credentials"), (403, "refused"), (302, "said: HTTP 302")],
)
async def test_answers_about_our_request_are_misconfiguration(fake: FakeAS, status: int, says: str) -> None:
    # Waiting does not fix rejected credentials: 503 without Retry-After, and the log says why.
    fake.status, fake.raw = status, b'{"error":"invalid_client"}'
    with pytest.raises(ConfigurationError) as caught:
        await validator(fake).validate("t")
    assert says in str(caught.value.detail) and "client_id 'rs', client_secret_basic" in str(caught.value.detail)


async def test_unreachable_and_slow_as_503_within_timeout(fake: FakeAS) -> None:
    down = IntrospectionValidator("http://127.0.0.1:9/introspect", client_id="rs", client_secret="x", audience=RESOURCE)
    with pytest.raises(AuthorizationServerUnavailableError):
        await down.validate("t")
    fake.delay = 2.0
    started = time.monotonic()
    with pytest.raises(AuthorizationServerUnavailableError):
        await validator(fake, timeout=0.3).validate("t")
    assert time.monotonic() - started < 1.5


async def test_never_logs_the_token(fake: FakeAS, caplog: pytest.LogCaptureFixture) -> None:
    fake.status = 500
    with pytest.raises(AuthorizationServerUnavailableError):
        await validator(fake).validate("secret-token-value-123456")
    assert caplog.records and all("secret-token-value" not in r.getMessage() for r in caplog.records)


async def test_positive_results_cached(fake: FakeAS) -> None:
    v = validator(fake)
    for _ in range(5):
        await v.validate("t")
    assert fake.calls == 1


@pytest.mark.parametrize(
    "raw", [b'{"active": true, "aud": "%s", "exp": NaN}', b'{"active": true, "aud": "%s", "exp": Infinity}']
)
async def test_non_finite_exp_is_not_active_never_a_crash(fake: FakeAS, raw: bytes) -> None:
    fake.raw = raw.replace(b"%s", RESOURCE.encode())
    with pytest.raises(InvalidTokenError, match="malformed"):
        await validator(fake).validate("t")


async def test_positive_result_answered_by_the_token_cache_until_min_exp_ttl(fake: FakeAS) -> None:
    """The middleware's synchronous lookup: a positive result is in the TokenCache (keyed by
    the token's SHA-256), never past min(exp, cache_ttl) (RFC 7662 §4)."""
    from mcp_auth_middleware.validators import token_key

    v = validator(fake, cache_ttl=0.5)
    key = token_key(b"t")
    assert v.cached(key) is None
    info = await v.validate("t")
    assert v.cached(key) is info
    await asyncio.sleep(0.6)  # past cache_ttl (exp is 10 minutes away)
    assert v.cached(key) is None
    fake.answer = {"active": False}
    with pytest.raises(InvalidTokenError):
        await v.validate_new("t", key)
    assert fake.calls == 2 and v.cached(key) is None


async def test_cache_off_keeps_nothing_for_the_fast_path(fake: FakeAS) -> None:
    from mcp_auth_middleware.validators import token_key

    v = validator(fake, cache_ttl=0)
    await v.validate("t")
    assert v.cached(token_key(b"t")) is None


async def test_concurrent_requests_share_one_call(fake: FakeAS) -> None:
    fake.delay = 0.2
    v = validator(fake)
    results = await asyncio.gather(*(v.validate("same-new-token") for _ in range(200)))
    assert {r.sub for r in results} == {"alice"}
    assert fake.calls == 1


async def test_cache_never_outlives_exp(fake: FakeAS) -> None:
    fake.answer["exp"] = time.time() + 1.5  # NumericDate may be fractional
    v = validator(fake, leeway=0, cache_ttl=60)
    await v.validate("t")
    await asyncio.sleep(1.6)
    fake.answer = {"active": False}
    with pytest.raises(InvalidTokenError):
        await v.validate("t")
    assert fake.calls == 2


async def test_negative_results_cached_briefly(fake: FakeAS) -> None:
    fake.answer = {"active": False}
    v = validator(fake, negative_cache_ttl=0.3)
    for _ in range(3):
        with pytest.raises(InvalidTokenError):
            await v.validate("t")
    assert fake.calls == 1
    await asyncio.sleep(0.4)
    with pytest.raises(InvalidTokenError):
        await v.validate("t")
    assert fake.calls == 2


async def test_errors_are_not_cached(fake: FakeAS) -> None:
    fake.status = 500
    v = validator(fake)
    with pytest.raises(AuthorizationServerUnavailableError):
        await v.validate("t")
    fake.status = 200
    assert (await v.validate("t")).sub == "alice"


async def test_cache_off_for_instant_revocation(fake: FakeAS) -> None:
    v = validator(fake, cache_ttl=0)
    await v.validate("t")
    await v.validate("t")
    assert fake.calls == 2


async def test_malformed_token_never_sent(fake: FakeAS) -> None:
    with pytest.raises(InvalidTokenError):
        await validator(fake).validate("bad token\x00with junk")
    assert fake.calls == 0


def test_configuration_errors() -> None:
    with pytest.raises(ValueError, match="endpoint"):
        IntrospectionValidator(client_id="rs", client_secret="x")
    with pytest.raises(ValueError, match="is plain http to a host that is not loopback"):
        IntrospectionValidator("http://as.example/introspect", client_id="rs", client_secret="x")
    with pytest.raises(ValueError, match="client_secret"):
        IntrospectionValidator("https://as.example/introspect", client_id="rs")


async def test_against_the_local_authorization_server_with_revocation() -> None:
    with running_authorization_server(token_format="opaque", default_resource=RESOURCE) as server:
        server.register_resource_server("rs", "rs-secret", [RESOURCE])
        v = IntrospectionValidator(
            f"{server.issuer}/introspect",
            client_id="rs",
            client_secret="rs-secret",
            audience=RESOURCE,
            issuer=server.issuer,
            cache_ttl=0.5,
        )
        token = server.mint_token(sub="bob", scopes=["mcp"])
        assert (await v.validate(token)).sub == "bob"
        server.revoke_tokens([token])
        assert (await v.validate(token)).sub == "bob"  # still cached
        await asyncio.sleep(0.6)
        with pytest.raises(InvalidTokenError):
            await v.validate(token)


async def test_as_outage_mid_traffic(fake: FakeAS) -> None:
    """Cached tokens keep working through an outage; new ones get 503 (not 401) until it ends."""
    v = validator(fake)
    assert (await v.validate("known-token")).sub == "alice"
    fake.status = 503
    assert (await v.validate("known-token")).sub == "alice"  # from the cache
    with pytest.raises(AuthorizationServerUnavailableError):
        await v.validate("new-token")
    fake.status = 200
    assert (await v.validate("new-token")).sub == "alice"


async def test_dpop_bound_token_refused(fake: FakeAS) -> None:
    fake.answer["cnf"] = {"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}
    with pytest.raises(InvalidTokenError, match="sender-constrained"):
        await validator(fake).validate("t")


@pytest.mark.parametrize(
    "binding",
    [
        {"cnf": {"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}},
        {"cnf": {"x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"}},  # RFC 8705 §3.2
        {"token_type": "DPoP"},  # RFC 9449 §6.2: the type alone says the token is bound
        {"token_type": "dpop"},
    ],
)
async def test_sender_constrained_answers_refused_as_bearer(fake: FakeAS, binding: dict[str, Any]) -> None:
    fake.answer.update(binding)
    with pytest.raises(InvalidTokenError, match="sender-constrained"):
        await validator(fake).validate("bound-token")


async def test_for_resource_binds_a_copy_with_its_own_caches(fake: FakeAS) -> None:
    shared = IntrospectionValidator(fake.url, client_id="rs", client_secret="rs-secret")
    first, second = shared.for_resource(RESOURCE), shared.for_resource("https://mcp.example.com/admin")
    assert (await first.validate("known-token")).sub == "alice"
    with pytest.raises(InvalidTokenError, match="not issued for this resource"):
        await second.validate("known-token")  # neither cache of `first` answers for `second`
    assert shared.audience is None and first.calls == 1 and second.calls == 1
