"""The token-guessing guard in memory: counting failures only, 429 before validation, proxies."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import httpx2
import pytest

from mcp_auth_middleware import AuthInfo, InvalidTokenError, MCPAuthMiddleware
from mcp_auth_middleware.rate_limit import ClientAddresses, FailureLimiter, client_address, parse_networks
from mcp_auth_middleware.testing import LocalIssuer

from .conftest import ISSUER, RESOURCE, bearer, echo_app

Factory = Callable[..., MCPAuthMiddleware]


def client_from(app: Any, address: str) -> httpx2.AsyncClient:
    return httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=app, client=(address, 4000)), base_url="https://mcp.example.com"
    )


async def test_guesser_blocked_after_the_limit_with_retry_after(make_app: Factory, issuer: LocalIssuer) -> None:
    app = make_app(failure_limit="3/minute")
    good = issuer.mint_token(audience=RESOURCE)
    async with client_from(app, "10.1.1.1") as guesser, client_from(app, "10.1.1.2") as honest:
        statuses = [(await guesser.post("/mcp", headers=bearer(f"guess-{i}"))).status_code for i in range(5)]
        assert statuses == [401, 401, 401, 429, 429]
        blocked = await guesser.post("/mcp", headers=bearer("guess-again"))
        assert blocked.status_code == 429 and 1 <= int(blocked.headers["retry-after"]) <= 61
        assert "www-authenticate" not in blocked.headers  # not a challenge: the token is not the problem
        assert (await honest.post("/mcp", headers=bearer(good))).status_code == 200


async def test_a_valid_token_is_never_refused_for_earlier_failures(make_app: Factory, issuer: LocalIssuer) -> None:
    app = make_app(failure_limit="3/minute")
    seen, new = issuer.mint_token(audience=RESOURCE, sub="seen"), issuer.mint_token(audience=RESOURCE, sub="new")
    async with client_from(app, "10.1.1.3") as shared_address:
        assert (await shared_address.post("/mcp", headers=bearer(seen))).status_code == 200
        for i in range(5):
            await shared_address.post("/mcp", headers=bearer(f"guess-{i}"))
        assert (await shared_address.post("/mcp", headers=bearer("guess-5"))).status_code == 429
        assert (await shared_address.post("/mcp", headers=bearer(seen))).json()["sub"] == "seen"  # cached
        assert (await shared_address.post("/mcp", headers=bearer(new))).json()["sub"] == "new"  # checked locally


async def test_issued_but_unusable_tokens_are_not_guesses(make_app: Factory, issuer: LocalIssuer) -> None:
    # Correctly signed, but expired or for another audience: a client's bug, not guessing.
    app = make_app(failure_limit="2/minute")
    expired = issuer.mint_token(audience=RESOURCE, expires_in=-120)
    elsewhere = issuer.mint_token(audience="https://other.example.com/mcp")
    async with client_from(app, "10.1.1.4") as client:
        statuses = [(await client.post("/mcp", headers=bearer(t))).status_code for t in [expired, elsewhere] * 5]
        assert statuses == [401] * 10
        assert app.guard is not None and not app.guard.is_suspect("10.1.1.4")
        statuses = [(await client.post("/mcp", headers=bearer(f"guess-{i}"))).status_code for i in range(3)]
    assert statuses == [401, 401, 429]


async def test_blocked_requests_do_no_validation_work(make_app: Factory) -> None:
    calls: list[str] = []

    class Counting:
        async def validate(self, token: str) -> AuthInfo:
            calls.append(token)
            raise InvalidTokenError()

    app = make_app(validator=Counting(), failure_limit="2/minute")
    async with client_from(app, "10.2.2.2") as guesser:
        for i in range(6):
            await guesser.post("/mcp", headers=bearer(f"guess-{i}"))
    assert calls == ["guess-0", "guess-1"]


async def test_successes_and_missing_tokens_are_never_counted(make_app: Factory, issuer: LocalIssuer) -> None:
    app = make_app(failure_limit="2/minute")
    good = issuer.mint_token(audience=RESOURCE)
    async with client_from(app, "10.3.3.3") as client:
        for _ in range(20):
            assert (await client.post("/mcp", headers=bearer(good))).status_code == 200
            assert (await client.post("/mcp")).status_code == 401  # the OAuth discovery probe
        assert app.guard is not None and not app.guard.is_suspect("10.3.3.3")


async def test_guard_can_be_turned_off(make_app: Factory) -> None:
    app = make_app(failure_limit=None)
    async with client_from(app, "10.4.4.4") as client:
        assert {(await client.post("/mcp", headers=bearer(f"g{i}"))).status_code for i in range(30)} == {401}


def peer_scope(peer: str, *headers: tuple[bytes, bytes]) -> dict[str, Any]:
    return {"client": (peer, 1), "headers": list(headers)}


PROXIES = parse_networks(["10.0.0.0/8"])


def test_client_address_trusts_forwarded_headers_only_from_trusted_proxies() -> None:
    xff = (b"x-forwarded-for", b"198.51.100.9, 10.0.0.5")
    assert client_address(peer_scope("10.0.0.1", xff), PROXIES) == "198.51.100.9"
    assert client_address(peer_scope("203.0.113.1", xff), PROXIES) == "203.0.113.1"  # untrusted peer: ignored
    assert client_address(peer_scope("10.0.0.1", xff), ()) == "10.0.0.1"
    spoofed = (b"x-forwarded-for", b"1.2.3.4, 198.51.100.9")  # the client wrote the leftmost hop itself
    assert client_address(peer_scope("10.0.0.1", spoofed), PROXIES) == "198.51.100.9"
    forwarded = (b"forwarded", b'for="[2001:db8::1]";proto=https')
    assert client_address(peer_scope("10.0.0.1", forwarded), PROXIES, "forwarded") == "2001:db8::1"


def test_x_forwarded_for_on_several_field_lines_is_one_list() -> None:
    # RFC 9110 §5.3: the client's own line first, then the one its proxy appended.
    lines = ((b"x-forwarded-for", b"6.6.6.6"), (b"x-forwarded-for", b"198.51.100.9"))
    assert client_address(peer_scope("10.0.0.1", *lines), PROXIES) == "198.51.100.9"
    chained = ((b"x-forwarded-for", b"6.6.6.6, 198.51.100.9"), (b"x-forwarded-for", b"10.0.0.7"))
    assert client_address(peer_scope("10.0.0.1", *chained), PROXIES) == "198.51.100.9"


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        ([b"for=6.6.6.6, for=198.51.100.9"], "198.51.100.9"),  # the client chose the first element
        ([b"for=6.6.6.6", b"for=198.51.100.9;proto=https"], "198.51.100.9"),  # two field lines
        ([b'for="[2001:DB8::1]:4711", for=10.0.0.9'], "2001:db8::1"),  # a port, a trusted hop
        ([b"for=198.51.100.9:8080"], "198.51.100.9"),
        ([b'for="_hidden", for=10.0.0.9'], "_hidden"),  # obfuscated (RFC 7239 §6): still one client
        ([b'for="6.6.6.6, for=198.51.100.9'], "198.51.100.9"),  # an unbalanced quote swallows nothing
        ([b"for=6.6.6.6, proto=https"], "10.0.0.1"),  # the proxy's element names no `for`
    ],
)
def test_forwarded_takes_the_rightmost_hop_that_is_not_a_trusted_proxy(lines: list[bytes], expected: str) -> None:
    scope = peer_scope("10.0.0.1", *((b"forwarded", line) for line in lines))
    assert client_address(scope, PROXIES, "forwarded") == expected


def test_only_the_configured_forwarding_header_is_read() -> None:
    both = ((b"forwarded", b"for=6.6.6.6"), (b"x-forwarded-for", b"198.51.100.9"))
    assert client_address(peer_scope("10.0.0.1", *both), PROXIES) == "198.51.100.9"
    assert client_address(peer_scope("10.0.0.1", *both), PROXIES, "forwarded") == "6.6.6.6"
    only_other = (b"forwarded", b"for=6.6.6.6")  # a client can send the header its proxy does not write
    assert client_address(peer_scope("10.0.0.1", only_other), PROXIES) == "10.0.0.1"
    with pytest.raises(ValueError, match="forwarded_header"):
        ClientAddresses(["10.0.0.0/8"], "x-real-ip")  # type: ignore[arg-type]


async def test_behind_a_proxy_a_rotating_spoofed_hop_does_not_dodge_the_guard(make_app: Factory) -> None:
    app = make_app(failure_limit="3/minute", trusted_proxies=["10.0.0.0/8"])
    async with client_from(app, "10.0.0.1") as proxy:
        statuses = [
            (
                await proxy.post(
                    "/mcp",
                    headers=[
                        ("authorization", f"Bearer guess-{i}"),
                        ("x-forwarded-for", f"6.6.6.{i}"),  # the attacker's own line, new every time
                        ("x-forwarded-for", "198.51.100.9"),  # what the proxy appended
                    ],
                )
            ).status_code
            for i in range(5)
        ]
    assert statuses == [401, 401, 401, 429, 429]


async def test_behind_a_proxy_a_guesser_cannot_aim_the_guard_at_a_victim(
    make_app: Factory, issuer: LocalIssuer
) -> None:
    app = make_app(failure_limit="3/minute", trusted_proxies=["10.0.0.0/8"], forwarded_header="forwarded")
    good = issuer.mint_token(audience=RESOURCE)
    async with client_from(app, "10.0.0.1") as proxy:
        for i in range(6):  # the attacker writes the victim's address first; the proxy appends the real one
            spoofed = {"authorization": f"Bearer guess-{i}", "forwarded": "for=192.0.2.50, for=198.51.100.9"}
            await proxy.post("/mcp", headers=spoofed)
        victim = await proxy.post("/mcp", headers={**bearer(good), "forwarded": "for=192.0.2.50"})
        victim_typo = await proxy.post("/mcp", headers={**bearer("typo"), "forwarded": "for=192.0.2.50"})
        attacker = await proxy.post("/mcp", headers={**bearer("guess-7"), "forwarded": "for=198.51.100.9"})
    assert victim.status_code == 200
    assert victim_typo.status_code == 401  # the victim's address was never blocked
    assert attacker.status_code == 429


async def test_memory_storage_sweeps_lazily() -> None:
    limiter = FailureLimiter("100/minute")
    for i in range(2000):
        await limiter.record_failure(f"10.9.{i // 250}.{i % 250}")
    assert limiter.is_suspect("10.9.0.1") and not limiter.is_suspect("10.8.0.1")
    assert await limiter.retry_after("10.9.0.1") is None  # one failure is far below the limit


@pytest.mark.parametrize("limit", ["nonsense", "5/fortnight"])
def test_bad_limit_is_a_configuration_error(limit: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - limits raises a plain ValueError subclass
        FailureLimiter(limit)


async def test_blocked_address_opaque_tokens_never_reach_the_authorization_server(
    make_app: Factory, issuer: LocalIssuer
) -> None:
    from mcp_auth_middleware import FallbackValidator

    asked: list[str] = []

    class Introspection:  # stands for the remote call: each token it sees costs the AS a request
        async def validate(self, token: str) -> AuthInfo:
            asked.append(token)
            raise InvalidTokenError("The access token is not active")

    app = make_app(validator=FallbackValidator(issuer.validator(), Introspection()), failure_limit="2/minute")
    good = issuer.mint_token(audience=RESOURCE)
    async with client_from(app, "10.5.5.5") as client:
        statuses = [(await client.post("/mcp", headers=bearer(f"opaque-{i}"))).status_code for i in range(5)]
        jwt_status = (await client.post("/mcp", headers=bearer(good))).status_code
    assert statuses == [401, 401, 429, 429, 429]
    assert asked == ["opaque-0", "opaque-1"]
    assert jwt_status == 200  # a JWT is checked locally even now, and it is valid


async def test_forwarding_headers_from_an_untrusted_peer_warned_about_once(
    make_app: Factory, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app()  # no trusted_proxies: a proxy in front would make every client one address
    async with client_from(app, "10.6.6.6") as client:
        for i in range(3):
            await client.post("/mcp", headers={**bearer(f"bad-{i}"), "x-forwarded-for": "198.51.100.9"})
    warnings = [r for r in caplog.records if "trusted_proxies" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING
    assert app.guard is not None and app.guard.is_suspect("10.6.6.6")  # the header was not believed


def test_forwarding_applied_by_uvicorn_is_not_called_an_untrusted_proxy(
    issuer: LocalIssuer, caplog: pytest.LogCaptureFixture
) -> None:
    """uvicorn's defaults (--proxy-headers, --forwarded-allow-ips 127.0.0.1) already put the
    client from X-Forwarded-For into the peer: the line must not name that client a proxy."""
    from mcp_auth_middleware.testing import free_port, serve

    port = free_port()
    resource = f"http://127.0.0.1:{port}/mcp"
    app = MCPAuthMiddleware(echo_app(), resource=resource, authorization_servers=[ISSUER], validator=issuer.validator())
    with caplog.at_level(logging.INFO, logger="mcp_auth_middleware"), serve(app, port=port):
        answer = httpx2.post(resource, headers={"X-Forwarded-For": "203.0.113.9", **bearer("guess")}, timeout=10)
    assert answer.status_code == 401
    lines = [r for r in caplog.records if "X-Forwarded-For" in r.getMessage()]
    assert len(lines) == 1 and lines[0].levelno == logging.INFO
    assert "the server already took the client address from it" in lines[0].getMessage()
    assert "203.0.113.9" in lines[0].getMessage()
    assert "is not in trusted_proxies" not in caplog.text


async def test_the_lazy_sweep_still_overrides_the_hook_limits_calls() -> None:
    """LazySweepMemoryStorage overrides a name-mangled method of `limits`' async MemoryStorage
    (a private detail, hence `limits<6` in pyproject.toml): if a release renames it, the
    override silently stops working and every hit sweeps every key. This fails first."""
    from limits.aio.storage import MemoryStorage

    from mcp_auth_middleware.rate_limit import LazySweepMemoryStorage

    assert callable(getattr(MemoryStorage, "_MemoryStorage__schedule_expiry", None))
    storage = LazySweepMemoryStorage()
    sweeps: list[float] = []
    original = MemoryStorage._MemoryStorage__schedule_expiry  # type: ignore[attr-defined]

    async def counted(self: MemoryStorage) -> None:
        sweeps.append(time.monotonic())
        await original(self)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(MemoryStorage, "_MemoryStorage__schedule_expiry", counted)
        for i in range(500):
            await storage.incr(f"key-{i}", 60)
    assert len(sweeps) == 1  # 500 hits within a second: one sweep, not 500
