"""DPoP replay protection shared by two replicas through a real Redis (RFC 9449 §11.1): a proof
used on one replica is refused on the other."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from collections.abc import Iterator

import httpx2
import pytest
from joserfc import jws
from joserfc.jwk import ECKey

from mcp_auth_middleware.server import LocalAuthorizationServer
from mcp_auth_middleware.testing import running_authorization_server

from .conftest import Redis
from .test_redis_rate_limit import RESOURCE, replica

pytestmark = pytest.mark.interop

KEY = ECKey.generate_key("P-256")


def proof(token: str, nonce: str | None = None) -> str:
    ath = base64.urlsafe_b64encode(hashlib.sha256(token.encode()).digest()).rstrip(b"=").decode()
    claims = {"jti": secrets.token_urlsafe(12), "htm": "POST", "htu": RESOURCE, "iat": int(time.time()), "ath": ath}
    if nonce is not None:
        claims["nonce"] = nonce
    header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": KEY.as_dict(private=False)}
    return jws.serialize_compact(header, json.dumps(claims), KEY)


@pytest.fixture(scope="module", params=["jwt", "opaque"])
def issuer(request: pytest.FixtureRequest) -> Iterator[LocalAuthorizationServer]:
    with running_authorization_server(token_format=request.param) as server:
        server.register_resource_server("rs", "rs-secret", [RESOURCE])
        yield server


def test_a_proof_replayed_on_another_replica_is_refused(issuer: LocalAuthorizationServer, redis_server: Redis) -> None:
    storage = f"redis://127.0.0.1:{redis_server.port}/1"
    token = issuer.mint_token(sub="dora", audience=RESOURCE, dpop_jkt=KEY.thumbprint())
    variables = {"MCP_AUTH_DPOP": "1"}
    if issuer.token_format == "opaque":
        variables |= {"MCP_AUTH_TOKEN_VALIDATION": "introspection", "MCP_AUTH_CLIENT_ID": "rs"}
        variables |= {"MCP_AUTH_CLIENT_SECRET": "rs-secret"}
    with replica(issuer.issuer, storage, **variables) as (a, _), replica(issuer.issuer, storage, **variables) as (b, _):
        used = proof(token)
        first = httpx2.post(a, headers={"Authorization": f"DPoP {token}", "DPoP": used}, timeout=10)
        replayed = httpx2.post(b, headers={"Authorization": f"DPoP {token}", "DPoP": used}, timeout=10)
        fresh = httpx2.post(b, headers={"Authorization": f"DPoP {token}", "DPoP": proof(token)}, timeout=10)
        as_bearer = httpx2.post(a, headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert first.status_code == 200 and first.text == "dora"
    assert replayed.status_code == 401 and "already used" in replayed.json()["error_description"]
    assert fresh.status_code == 200
    assert as_bearer.status_code == 401  # RFC 9449 §7.2, through introspection's cnf too


def test_nonces_from_one_replica_are_good_on_the_other(redis_server: Redis) -> None:
    with running_authorization_server() as issuer:
        _nonces_across_replicas(issuer, redis_server)


def _nonces_across_replicas(issuer: LocalAuthorizationServer, redis_server: Redis) -> None:
    storage = f"redis://127.0.0.1:{redis_server.port}/2"
    token = issuer.mint_token(sub="dora", audience=RESOURCE, dpop_jkt=KEY.thumbprint())
    shared = {"MCP_AUTH_DPOP": "1", "MCP_AUTH_DPOP_NONCES": "1", "MCP_AUTH_DPOP_NONCE_SECRET": "replica-secret"}
    with replica(issuer.issuer, storage, **shared) as (a, _), replica(issuer.issuer, storage, **shared) as (b, _):
        asked = httpx2.post(a, headers={"Authorization": f"DPoP {token}", "DPoP": proof(token)}, timeout=10)
        nonce = asked.headers["dpop-nonce"]
        answered = httpx2.post(b, headers={"Authorization": f"DPoP {token}", "DPoP": proof(token, nonce)}, timeout=10)
    assert asked.status_code == 401 and asked.json()["error"] == "use_dpop_nonce"
    assert answered.status_code == 200
