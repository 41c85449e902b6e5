"""The validator bases: a user's plain validator gets the defaults, a CachingValidator subclass
gets a cache of its own per resource, and the middleware asks a validator, never its type."""

from __future__ import annotations

import pytest

from mcp_auth_middleware import AuthInfo, InvalidTokenError, MCPAuthMiddleware
from mcp_auth_middleware.validators import CachingValidator, Validator, as_validator, token_key

from ..conftest import ISSUER, RESOURCE, asgi_client, bearer, echo_app

ALICE = AuthInfo(sub="alice", client_id="app", scopes=frozenset({"mcp"}), expires_at=2_000_000_000)


class Counting(CachingValidator):
    def __init__(self) -> None:
        super().__init__(cache_size=100)

    def _new_cache(self) -> None:  # each copy counts its own
        super()._new_cache()
        self.checked: list[str] = []

    async def validate_new(self, token: str, key: bytes) -> AuthInfo:
        self.checked.append(token)
        if token != "good":
            raise InvalidTokenError()
        self.remember(key, ALICE, until=ALICE.expires_at or 0)
        return ALICE


class Plain:
    async def validate(self, token: str) -> AuthInfo:
        return ALICE


async def test_a_plain_validator_gets_every_default() -> None:
    wrapped = as_validator(Plain())
    assert isinstance(wrapped, Validator)
    assert wrapped.cached(token_key(b"x")) is None
    assert not wrapped.checks_locally("x")
    assert wrapped.for_resource(RESOURCE) is wrapped and wrapped.accepting_bound() is wrapped
    await wrapped.check()  # nothing to check
    assert await wrapped.validate_new("x", token_key(b"x")) is ALICE


async def test_a_caching_validator_is_asked_once_per_token_and_per_resource() -> None:
    shared = Counting()
    one = MCPAuthMiddleware(echo_app(), resource=RESOURCE, authorization_servers=[ISSUER], validator=shared)
    other = MCPAuthMiddleware(
        echo_app(), resource="https://other.example/mcp", authorization_servers=[ISSUER], validator=shared
    )
    assert one.validator is not shared and other.validator is not one.validator  # a copy each
    async with asgi_client(one) as client:
        for _ in range(3):
            assert (await client.post("/mcp", headers=bearer("good"))).status_code == 200
        assert (await client.post("/mcp", headers=bearer("bad"))).status_code == 401
    async with asgi_client(other) as client:
        assert (await client.post("/mcp", headers=bearer("good"))).status_code == 200
    assert isinstance(one.validator, Counting) and isinstance(other.validator, Counting)
    assert one.validator.checked == ["good", "bad"]  # then hits of its own cache
    assert other.validator.checked == ["good"]  # its own cache: nothing carried over
    assert shared.checked == [] and len(shared._cache) == 0


@pytest.mark.parametrize("pair", [True, False])
async def test_a_plain_validators_cache_pair_is_used_when_it_has_one(pair: bool) -> None:
    """docs/configuration.md let a plain object offer `cached` with `validate_new`."""
    calls: list[str] = []

    class WithPair(Plain):
        async def validate(self, token: str) -> AuthInfo:
            calls.append("validate")
            return ALICE

        def cached(self, key: bytes) -> AuthInfo | None:
            calls.append("cached")
            return None

        async def validate_new(self, token: str, key: bytes) -> AuthInfo:
            calls.append("validate_new")
            return ALICE

    validator = WithPair() if pair else Plain()
    app = MCPAuthMiddleware(echo_app(), resource=RESOURCE, authorization_servers=[ISSUER], validator=validator)
    async with asgi_client(app) as client:
        assert (await client.post("/mcp", headers=bearer("t"))).status_code == 200
    assert calls == (["cached", "validate_new"] if pair else [])
