"""DPoP (RFC 9449) on the resource server: proofs checked as §4.3 and §7 say, replays refused,
nonces, challenges and metadata; a bound token is never a bearer token."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import secrets
import time
from collections.abc import Callable
from typing import Any

import httpx2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from joserfc import jws
from joserfc.jwk import ECKey, OctKey, RSAKey

from mcp_auth_middleware import MCPAuthMiddleware
from mcp_auth_middleware.dpop import DPoPVerifier, InvalidDPoPProofError
from mcp_auth_middleware.testing import LocalIssuer

from .conftest import ISSUER, RESOURCE, asgi_client, echo_app

Factory = Callable[..., MCPAuthMiddleware]
CLIENT_KEY = ECKey.generate_key("P-256")


def proof(
    token: str,
    *,
    key: Any = CLIENT_KEY,
    method: str = "POST",
    url: str = RESOURCE,
    header: dict[str, Any] | None = None,
    **claims: Any,
) -> str:
    """A DPoP proof as a client builds it (RFC 9449 §4.2), with joserfc."""
    ath = base64.urlsafe_b64encode(hashlib.sha256(token.encode()).digest()).rstrip(b"=").decode()
    body = {"jti": secrets.token_urlsafe(12), "htm": method, "htu": url, "iat": int(time.time()), "ath": ath, **claims}
    head = {"typ": "dpop+jwt", "alg": "ES256" if isinstance(key, ECKey) else "RS256", "jwk": key.as_dict(private=False)}
    head |= header or {}
    return jws.serialize_compact(head, json.dumps({k: v for k, v in body.items() if v is not None}), key)


def raw_proof(extra_header: dict[str, Any], token: str) -> str:
    """A proof joserfc itself would refuse to produce (an unknown `crit`), signed by hand."""

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": CLIENT_KEY.as_dict(private=False), **extra_header}
    ath = b64(hashlib.sha256(token.encode()).digest())
    claims = {"jti": secrets.token_urlsafe(12), "htm": "POST", "htu": RESOURCE, "iat": int(time.time()), "ath": ath}
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    signature = jws.JWSRegistry.algorithms["ES256"].sign(signing_input.encode(), CLIENT_KEY)
    return f"{signing_input}.{b64(signature)}"


def bound_token(issuer: LocalIssuer, key: Any = CLIENT_KEY, **claims: Any) -> str:
    return issuer.mint_token(audience=RESOURCE, sub="dora", cnf={"jkt": key.thumbprint()}, **claims)


def dpop(token: str, the_proof: str) -> dict[str, str]:
    return {"Authorization": f"DPoP {token}", "DPoP": the_proof}


@pytest.fixture
def dpop_app(make_app: Factory) -> MCPAuthMiddleware:
    return make_app(dpop=True)


async def test_a_bound_token_with_its_proof_passes_once(dpop_app: MCPAuthMiddleware, issuer: LocalIssuer) -> None:
    token = bound_token(issuer)
    first = proof(token)
    async with asgi_client(dpop_app) as client:
        accepted = await client.post("/mcp", headers=dpop(token, first))
        replayed = await client.post("/mcp", headers=dpop(token, first))
        again = await client.post("/mcp", headers=dpop(token, proof(token)))  # a fresh proof
    assert accepted.status_code == 200 and accepted.json()["sub"] == "dora"
    assert replayed.status_code == 401  # RFC 9449 §11.1: a proof is used once
    assert 'DPoP error="invalid_dpop_proof"' in replayed.headers["www-authenticate"]
    assert again.status_code == 200


async def test_a_cached_token_costs_one_proof_check_not_a_token_check(
    dpop_app: MCPAuthMiddleware, issuer: LocalIssuer
) -> None:
    token = bound_token(issuer)
    async with asgi_client(dpop_app) as client:
        for _ in range(5):
            assert (await client.post("/mcp", headers=dpop(token, proof(token)))).status_code == 200
    assert dpop_app.validator.cache_misses == 1  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("make_proof", "why"),
    [
        (lambda t: proof(t, key=ECKey.generate_key("P-256")), "not the key the token is bound to"),
        (lambda t: proof(t, method="GET"), "another HTTP method"),
        (lambda t: proof(t, url="https://mcp.example.com/other"), "another URL"),
        (lambda t: proof(t, ath="x" * 43), "not for this access token"),
        (lambda t: proof(t, iat=int(time.time()) - 3600), "too old"),
        (lambda t: proof(t, iat=int(time.time()) + 3600), "from the future"),
        (lambda t: proof(t, jti=None), "lacks a required claim"),
        (lambda t: proof(t, header={"typ": "JWT"}), "not typed dpop+jwt"),
        (lambda t: proof(t, header={"jwk": CLIENT_KEY.as_dict(private=True)}), "not a public key"),
        (lambda t: raw_proof({"crit": ["exp"], "exp": 1}, t), "unsupported header"),
        (lambda t: "garbage", "malformed"),
    ],
)
async def test_proofs_that_do_not_fit_are_refused(
    dpop_app: MCPAuthMiddleware, issuer: LocalIssuer, make_proof: Callable[[str], str], why: str
) -> None:
    token = bound_token(issuer)
    async with asgi_client(dpop_app) as client:
        response = await client.post("/mcp", headers=dpop(token, make_proof(token)))
    assert response.status_code == 401
    assert why in response.json()["error_description"]
    assert response.json()["error"] == "invalid_dpop_proof" or why == "not the key the token is bound to"


async def test_hmac_proofs_are_refused(issuer: LocalIssuer) -> None:
    token = bound_token(issuer)
    secret = OctKey.generate_key(256)
    forged = jws.serialize_compact(
        {"typ": "dpop+jwt", "alg": "HS256", "jwk": CLIENT_KEY.as_dict(private=False)},
        json.dumps({"jti": "j", "htm": "POST", "htu": RESOURCE, "iat": int(time.time())}),
        secret,
    )
    with pytest.raises(InvalidDPoPProofError, match="algorithm"):
        await DPoPVerifier().verify(forged, method="POST", url=RESOURCE, access_token=token)


async def test_bound_token_as_bearer_and_missing_proofs(dpop_app: MCPAuthMiddleware, issuer: LocalIssuer) -> None:
    token, plain = bound_token(issuer), issuer.mint_token(audience=RESOURCE)
    async with asgi_client(dpop_app) as client:
        as_bearer = await client.post("/mcp", headers={"Authorization": f"Bearer {token}"})
        no_proof = await client.post("/mcp", headers={"Authorization": f"DPoP {token}"})
        unbound = await client.post("/mcp", headers=dpop(plain, proof(plain)))
        bearer_ok = await client.post("/mcp", headers={"Authorization": f"Bearer {plain}"})
        two = await client.post(
            "/mcp", headers=[("authorization", f"DPoP {token}"), ("dpop", proof(token)), ("dpop", proof(token))]
        )
    assert as_bearer.status_code == 401 and "sender-constrained" in as_bearer.json()["error_description"]  # §7.2
    assert no_proof.status_code == 401 and no_proof.json()["error"] == "invalid_dpop_proof"
    assert unbound.status_code == 401 and "not DPoP-bound" in unbound.json()["error_description"]
    assert bearer_ok.status_code == 200  # bearer tokens are still accepted unless dpop_required
    # RFC 9449 §4.3 (not more than one DPoP header) is a check of the proof: §7.1's answer.
    assert two.status_code == 401 and two.json()["error"] == "invalid_dpop_proof"
    assert two.headers["www-authenticate"].startswith("DPoP ")
    assert 'error="invalid_dpop_proof"' in two.headers["www-authenticate"]


async def test_challenges_and_metadata(make_app: Factory, issuer: LocalIssuer) -> None:
    async with asgi_client(make_app(dpop=True)) as client:
        challenges = (await client.post("/mcp")).headers.get_list("www-authenticate")
        document = (await client.get("/.well-known/oauth-protected-resource/mcp")).json()
    assert challenges[0].startswith("Bearer ") and challenges[1].startswith("DPoP ")
    assert 'algs="ES256 ES384 ES512 PS256 PS384 PS512 RS256 EdDSA"' in challenges[1]
    assert document["dpop_signing_alg_values_supported"][0] == "ES256"
    assert "dpop_bound_access_tokens_required" not in document
    plain = issuer.mint_token(audience=RESOURCE)
    async with asgi_client(make_app(dpop_required=True, dpop_algorithms="ES256")) as client:
        only_dpop = await client.post("/mcp", headers={"Authorization": f"Bearer {plain}"})
        document = (await client.get("/.well-known/oauth-protected-resource/mcp")).json()
    assert only_dpop.status_code == 401 and "DPoP-bound tokens only" in only_dpop.json()["error_description"]
    assert only_dpop.headers.get_list("www-authenticate")[0].startswith('DPoP error="invalid_token"')
    assert document["dpop_bound_access_tokens_required"] is True
    assert document["dpop_signing_alg_values_supported"] == ["ES256"]


async def test_server_nonces(make_app: Factory, issuer: LocalIssuer) -> None:
    app = make_app(dpop=True, dpop_nonces=True)
    token = bound_token(issuer)
    async with asgi_client(app) as client:
        asked = await client.post("/mcp", headers=dpop(token, proof(token)))
        nonce = asked.headers["dpop-nonce"]
        stale = await client.post("/mcp", headers=dpop(token, proof(token, nonce="stale-nonce")))
        fresh = await client.post("/mcp", headers=dpop(token, proof(token, nonce=nonce)))
    assert asked.status_code == 401 and 'DPoP error="use_dpop_nonce"' in asked.headers["www-authenticate"]
    assert stale.status_code == 401 and stale.headers["dpop-nonce"] == nonce  # a fresh one offered
    assert fresh.status_code == 200


def test_configuration_refused() -> None:
    with pytest.raises(ValueError, match="asymmetric"):
        DPoPVerifier(algorithms="HS256")
    with pytest.raises(ValueError, match="asymmetric"):
        DPoPVerifier(algorithms=[])


RSA_KEY = RSAKey.generate_key(2048)
FUZZ_ISSUER = LocalIssuer(ISSUER)
FUZZ_APP = MCPAuthMiddleware(
    echo_app(), resource=RESOURCE, authorization_servers=[ISSUER], validator=FUZZ_ISSUER.validator(), dpop=True
)
FUZZ_TOKEN = bound_token(FUZZ_ISSUER, RSA_KEY)
FUZZ_PROOF = proof(FUZZ_TOKEN, key=RSA_KEY)


def fuzz_call(the_proof: str) -> int:
    async def call() -> int:
        transport = httpx2.ASGITransport(app=FUZZ_APP)
        async with httpx2.AsyncClient(transport=transport, base_url="https://mcp.example.com") as client:
            response = await client.post("/mcp", headers=dpop(FUZZ_TOKEN, the_proof))
        return response.status_code

    return asyncio.run(call())


def test_the_fuzzed_proof_is_good_and_then_used() -> None:
    # Used once here, so a mutation that decodes to the same proof (base64url's spare bits)
    # is a replay below, as it must be.
    assert fuzz_call(FUZZ_PROOF) == 200


@settings(max_examples=150, deadline=None)
@given(position=st.integers(0, len(FUZZ_PROOF) - 1), replacement=st.characters(codec="ascii"))
def test_a_mutated_proof_is_never_accepted_and_never_crashes(position: int, replacement: str) -> None:
    fuzz_call(FUZZ_PROOF)  # whatever the order the tests run in, the original is used up
    mutated = FUZZ_PROOF[:position] + replacement + FUZZ_PROOF[position + 1 :]
    assert fuzz_call(mutated) in (400, 401), (position, replacement)


async def test_replay_store_down_fails_closed(issuer: LocalIssuer) -> None:
    # Redis on a port where nothing listens: a replay cannot be ruled out, so 503, never a pass.
    from mcp_auth_middleware.testing import free_port

    verifier = DPoPVerifier(storage_uri=f"redis://127.0.0.1:{free_port()}/0")
    token = bound_token(issuer)
    from mcp_auth_middleware import AuthorizationServerUnavailableError

    with pytest.raises(AuthorizationServerUnavailableError, match="replay check"):
        await verifier.verify(proof(token), method="POST", url=RESOURCE, access_token=token)


@pytest.mark.parametrize("part", ["header", "claims"])
async def test_a_proof_with_a_repeated_json_member_is_refused(
    dpop_app: MCPAuthMiddleware, issuer: LocalIssuer, part: str
) -> None:
    """RFC 7515 §5.2, RFC 8725 §3.4: proofs are read as strictly as access tokens, so a
    duplicate member (which parsers resolve differently) is malformed, not the last one."""
    token = bound_token(issuer)

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    jwk = json.dumps(CLIENT_KEY.as_dict(private=False))
    ath = b64(hashlib.sha256(token.encode()).digest())
    claims = f'"jti": "{secrets.token_urlsafe(12)}", "htm": "POST", "htu": "{RESOURCE}", "iat": {int(time.time())}, '
    claims += f'"ath": "{ath}"'
    header = f'{{"typ": "dpop+jwt", "alg": "ES256", "jwk": {jwk}'
    if part == "header":
        header += ', "alg": "ES256"}'
        body = "{" + claims + "}"
    else:
        header += "}"
        body = "{" + claims + ', "htm": "GET"}'
    signing_input = f"{b64(header.encode())}.{b64(body.encode())}"
    signature = jws.JWSRegistry.algorithms["ES256"].sign(signing_input.encode(), CLIENT_KEY)
    async with asgi_client(dpop_app) as client:
        answer = await client.post("/mcp", headers=dpop(token, f"{signing_input}.{b64(signature)}"))
    assert answer.status_code == 401
    assert answer.json() == {"error": "invalid_dpop_proof", "error_description": "The DPoP proof is malformed"}
