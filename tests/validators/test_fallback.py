"""FallbackValidator: JWTs locally, only opaque tokens to introspection."""

from __future__ import annotations

import pytest

from mcp_auth_middleware import AuthInfo, FallbackValidator, InvalidTokenError
from mcp_auth_middleware.testing import LocalIssuer

RESOURCE = "https://mcp.example.com/mcp"


class CountingIntrospection:
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.bound: str | None = None

    def for_resource(self, resource: str) -> CountingIntrospection:
        self.bound = resource
        return self

    async def validate(self, token: str) -> AuthInfo:
        self.calls.append(token)
        return AuthInfo(sub="opaque-user", client_id="c", scopes=frozenset({"mcp"}))


@pytest.fixture
def setup() -> tuple[LocalIssuer, CountingIntrospection, FallbackValidator]:
    issuer = LocalIssuer("https://as.example")
    introspection = CountingIntrospection()
    fallback = FallbackValidator(issuer.validator(), introspection).for_resource(RESOURCE)
    return issuer, introspection, fallback


async def test_jwt_validated_locally(setup: tuple[LocalIssuer, CountingIntrospection, FallbackValidator]) -> None:
    issuer, introspection, fallback = setup
    assert (await fallback.validate(issuer.mint_token(audience=RESOURCE, sub="jwt-user"))).sub == "jwt-user"
    assert introspection.calls == [] and introspection.bound == RESOURCE


async def test_opaque_token_introspected(setup: tuple[LocalIssuer, CountingIntrospection, FallbackValidator]) -> None:
    _, introspection, fallback = setup
    assert (await fallback.validate("an-opaque-token")).sub == "opaque-user"
    assert introspection.calls == ["an-opaque-token"]


@pytest.mark.parametrize("case", ["forged", "expired", "wrong_audience", "garbage_jwt"])
async def test_failed_jwt_never_reaches_the_authorization_server(
    setup: tuple[LocalIssuer, CountingIntrospection, FallbackValidator], case: str
) -> None:
    issuer, introspection, fallback = setup
    token = {
        "forged": LocalIssuer("https://as.example").mint_token(audience=RESOURCE),
        "expired": issuer.mint_token(audience=RESOURCE, expires_in=-300),
        "wrong_audience": issuer.mint_token(audience="https://other.example"),
        "garbage_jwt": "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl",
    }[case]
    with pytest.raises(InvalidTokenError):
        await fallback.validate(token)
    assert introspection.calls == []


async def test_cached_and_validate_new_route_like_validate(
    setup: tuple[LocalIssuer, CountingIntrospection, FallbackValidator],
) -> None:
    """The middleware's path (cached, then validate_new with the key it hashed) gives the same
    routing: JWTs locally and remembered, opaque tokens to a validator without a cache."""
    from mcp_auth_middleware.validators import token_key

    issuer, introspection, fallback = setup
    token = issuer.mint_token(audience=RESOURCE, sub="jwt-user")
    key = token_key(token.encode())
    assert fallback.cached(key) is None
    assert (await fallback.validate_new(token, key)).sub == "jwt-user"
    cached = fallback.cached(key)
    assert cached is not None and cached.sub == "jwt-user"
    assert (await fallback.validate_new("opaque-token", token_key(b"opaque-token"))).sub == "opaque-user"
    assert introspection.calls == ["opaque-token"]
    assert fallback.cached(token_key(b"opaque-token")) is None  # that validator keeps no cache
