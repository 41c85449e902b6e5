"""The broker's leg to a real provider (node oidc-provider, Entra-like: one confidential client,
PKCE required, RFC 9207 `iss`): a sign-in through its login and consent pages, the code
exchanged and the ID token verified; and what goes wrong: `state` from elsewhere, `iss` of
another provider, the user's `access_denied`, a code used twice, the provider down."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import pytest

from mcp_auth_middleware.broker.upstream import Pending, ProviderError, Upstream
from mcp_auth_middleware.testing import free_port

from .conftest import EntraLike, through_the_provider

pytestmark = pytest.mark.interop


async def upstream(provider: EntraLike) -> Upstream:
    return await Upstream.discover(
        provider.issuer, provider.client_id, provider.client_secret, scopes=("openid", "email", "offline_access")
    )


async def test_a_sign_in_at_the_provider(entra_like: EntraLike) -> None:
    provider = await upstream(entra_like)
    url, pending = provider.start(entra_like.redirect_uri)
    query = dict(parse_qsl(urlsplit(url).query))
    assert query["code_challenge_method"] == "S256" and query["state"] == pending.state and query["nonce"]
    callback = await through_the_provider(url, entra_like.redirect_uri)
    assert callback["iss"] == entra_like.issuer  # RFC 9207
    grant = await provider.finish(callback, pending)
    assert grant.subject == "alice" and grant.claims["email"] == "alice@example.com"
    assert grant.access_token and grant.refresh_token
    refreshed = await provider.refresh(grant.refresh_token)
    assert refreshed.access_token and refreshed.access_token != grant.access_token
    # The code was used: a second exchange is refused by the provider.
    with pytest.raises(ProviderError, match="refused the sign-in") as used:
        await provider.finish(callback, pending)
    assert "invalid_grant" in used.value.detail


async def test_a_callback_that_is_not_this_browsers_sign_in(entra_like: EntraLike) -> None:
    provider = await upstream(entra_like)
    url, pending = provider.start(entra_like.redirect_uri)
    callback = await through_the_provider(url, entra_like.redirect_uri)
    _, other = provider.start(entra_like.redirect_uri)
    refusals = {
        "another browser's state": (callback, other),
        "no state": ({k: v for k, v in callback.items() if k != "state"}, pending),
        "another provider's iss": (callback | {"iss": "http://127.0.0.1:1"}, pending),
        "no iss (the provider sends it)": ({k: v for k, v in callback.items() if k != "iss"}, pending),
        "no code": ({k: v for k, v in callback.items() if k != "code"}, pending),
    }
    for what, (params, kept) in refusals.items():
        with pytest.raises(ProviderError) as refused:
            await provider.finish(params, kept)
        assert callback["code"] not in str(refused.value) and callback["code"] not in refused.value.detail, what
    # None of those used the code: the right callback still signs in.
    assert (await provider.finish(callback, pending)).subject == "alice"


async def test_a_wrong_verifier_is_refused_by_the_provider(entra_like: EntraLike) -> None:
    provider = await upstream(entra_like)
    url, pending = provider.start(entra_like.redirect_uri)
    callback = await through_the_provider(url, entra_like.redirect_uri)
    forged = Pending(pending.state, pending.nonce, "x" * 64, pending.redirect_uri)
    with pytest.raises(ProviderError, match="refused the sign-in"):
        await provider.finish(callback, forged)


async def test_the_user_cancels_at_the_provider(entra_like: EntraLike) -> None:
    provider = await upstream(entra_like)
    url, pending = provider.start(entra_like.redirect_uri)
    callback = await through_the_provider(url, entra_like.redirect_uri, deny=True)
    assert callback["error"] == "access_denied"
    with pytest.raises(ProviderError, match="cancelled or refused") as cancelled:
        await provider.finish(callback, pending)
    assert not cancelled.value.unavailable


async def test_the_provider_down(entra_like: EntraLike) -> None:
    provider = await upstream(entra_like)
    url, pending = provider.start(entra_like.redirect_uri)
    callback = await through_the_provider(url, entra_like.redirect_uri)
    gone = dict(provider.metadata) | {"token_endpoint": f"http://127.0.0.1:{free_port()}/token"}
    down = Upstream(gone, entra_like.client_id, entra_like.client_secret, allow_http=True)
    with pytest.raises(ProviderError, match="cannot be reached") as unreachable:
        await down.finish(callback, pending)
    assert unreachable.value.unavailable
    with pytest.raises(ValueError, match="no token_endpoint"):
        Upstream({k: v for k, v in provider.metadata.items() if k != "token_endpoint"}, "broker", "s")
