"""ProviderTokenValidator and GoogleTokenInfo, against a stand-in that answers as Google's
tokeninfo endpoint is documented to (a form POST; 200 with azp, aud, sub, scope and exp as
strings; 400 "Invalid Value" for a token it does not know), on real uvicorn."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from mcp_auth_middleware import (
    AuthorizationServerUnavailableError,
    GoogleTokenInfo,
    InvalidTokenError,
    MCPAuthMiddleware,
)
from mcp_auth_middleware.testing import free_port, serve

from ..conftest import RESOURCE, echo_app

CLIENT = "1234-abc.apps.googleusercontent.com"


class TokenInfo:
    """Google's tokeninfo, as documented, for the tokens in `known`."""

    def __init__(self) -> None:
        self.known: dict[str, dict[str, str]] = {}
        self.requests: list[Request] = []

    def issue(self, token: str, client: str = CLIENT, scope: str = "openid email") -> str:
        expires = int(time.time()) + 3599
        self.known[token] = {
            "azp": client,
            "aud": client,
            "sub": "110169484474386276334",
            "scope": scope,
            "exp": str(expires),
            "expires_in": "3599",
            "email": "alice@example.com",
            "email_verified": "true",
            "access_type": "online",
        }
        return token

    async def endpoint(self, request: Request) -> JSONResponse:
        self.requests.append(request)
        form = await request.form()
        answer = self.known.get(str(form.get("access_token")))
        if answer is None:
            return JSONResponse({"error": "invalid_token", "error_description": "Invalid Value"}, status_code=400)
        await asyncio.sleep(0.05)  # a round trip: concurrent requests overlap
        return JSONResponse(answer)


@pytest.fixture(scope="module")
def google() -> Iterator[tuple[TokenInfo, str]]:
    stand_in = TokenInfo()
    with serve(Starlette(routes=[Route("/tokeninfo", stand_in.endpoint, methods=["POST"])])) as url:
        yield stand_in, f"{url}/tokeninfo"


def validator(url: str) -> GoogleTokenInfo:
    """docs/identity-providers.md, Google, with the stand-in's endpoint."""
    return GoogleTokenInfo(allowed_clients=[CLIENT], endpoint=url, allow_http=True)


async def test_a_google_access_token_is_checked_once_and_cached(google: tuple[TokenInfo, str]) -> None:
    stand_in, url = google
    token = stand_in.issue("ya29.a0AfH6SMBexample-one")
    checker = validator(url)
    infos = await asyncio.gather(*(checker.validate(token) for _ in range(20)))
    again = await checker.validate(token)
    assert checker.calls == 1  # twenty at once share one call; the next is a cache hit
    info = infos[0]
    assert (info.sub, info.client_id, info.scopes) == ("110169484474386276334", CLIENT, {"openid", "email"})
    assert info.expires_at is not None and info.expires_at > time.time()
    assert again is info
    assert all(str(r.url.query) == "" for r in stand_in.requests)  # the token never goes in a URL


async def test_invalid_tokens_and_other_clients_are_refused(google: tuple[TokenInfo, str]) -> None:
    stand_in, url = google
    checker = validator(url)
    with pytest.raises(InvalidTokenError, match="not valid"):
        await checker.validate("ya29.never-issued")
    with pytest.raises(InvalidTokenError, match="not valid"):
        await checker.validate("ya29.never-issued")
    assert checker.calls == 1  # the provider's "no" is remembered a moment
    other = stand_in.issue("ya29.for-another-app", client="9999-other.apps.googleusercontent.com")
    with pytest.raises(InvalidTokenError) as denial:
        await checker.validate(other)
    assert "is not in allowed_clients" in str(denial.value.detail)


async def test_google_unreachable_is_503_never_401() -> None:
    checker = validator(f"http://127.0.0.1:{free_port()}/tokeninfo")
    with pytest.raises(AuthorizationServerUnavailableError):
        await checker.validate("ya29.any")


def test_allowed_clients_are_required() -> None:
    with pytest.raises(ValueError, match="needs allowed_clients"):
        GoogleTokenInfo(allowed_clients=[])


async def test_through_the_middleware_on_real_uvicorn(google: tuple[TokenInfo, str]) -> None:
    stand_in, url = google
    token = stand_in.issue("ya29.a0AfH6SMBexample-two")
    app = MCPAuthMiddleware(
        echo_app(), resource=RESOURCE, authorization_servers=["https://accounts.google.com"], validator=validator(url)
    )
    with serve(app) as base:
        async with httpx2.AsyncClient() as http:
            allowed = await http.post(f"{base}/mcp", headers={"Authorization": f"Bearer {token}"})
            refused = await http.post(f"{base}/mcp", headers={"Authorization": "Bearer ya29.forged"})
    body: dict[str, Any] = allowed.json()
    assert allowed.status_code == 200 and body["client_id"] == CLIENT and body["sub"] == "110169484474386276334"
    assert refused.status_code == 401 and 'error="invalid_token"' in refused.headers["www-authenticate"]


async def test_a_request_that_goes_away_does_not_take_the_others_answer_with_it(
    google: tuple[TokenInfo, str],
) -> None:
    stand_in, url = google
    token = stand_in.issue("ya29.a0AfH6SMBexample-three")
    checker = validator(url)
    first = asyncio.ensure_future(checker.validate(token))
    second = asyncio.ensure_future(checker.validate(token))
    await asyncio.sleep(0.01)
    first.cancel()  # its client disconnected while Google was asked
    info = await second
    assert info.client_id == CLIENT and checker.calls == 1
