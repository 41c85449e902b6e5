"""Enterprise-managed sign-in (ID-JAG, SEP-990) and machine clients (client credentials,
SEP-1046) with the MCP SDK's own client classes: `IdentityAssertionOAuthProvider`,
`ClientCredentialsOAuthProvider`, `PrivateKeyJWTOAuthProvider`, against FastMCP behind the
middleware and the local authorization server on uvicorn, with the testing kit's enterprise
identity provider issuing ID-JAGs by token exchange. Then each refusal the draft asks for, at the
token endpoint, with nothing issued; and the ID-JAG's `jti` once across two replicas on one Redis."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import httpx2
import pytest
from fastmcp import FastMCP
from joserfc.jwk import RSAKey
from mcp import Client
from mcp.client.auth.extensions.client_credentials import (
    ClientCredentialsOAuthProvider,
    PrivateKeyJWTOAuthProvider,
    SignedJWTParameters,
)
from mcp.client.auth.extensions.identity_assertion import IdentityAssertionOAuthProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from mcp_auth_middleware import MCPAuthMiddleware, get_auth
from mcp_auth_middleware.server import EnterpriseIdentityProvider, LocalAuthorizationServer
from mcp_auth_middleware.server.enterprise import ID_JAG_TOKEN_TYPE, ID_TOKEN_TYPE, TOKEN_EXCHANGE
from mcp_auth_middleware.server.identity_assertion import JWT_BEARER
from mcp_auth_middleware.testing import free_port, running_authorization_server, running_identity_provider, serve

from ..interop.conftest import Redis, redis_server  # noqa: F401 (a fixture)
from .test_oauth_flow import MemoryStorage

pytestmark = pytest.mark.end_to_end

APP, APP_SECRET, IDP_SECRET = "enterprise-app", "app-secret-at-the-as", "app-secret-at-the-idp"
SIGNING_KEY = RSAKey.generate_key(2048, parameters={"kid": "signed-job-1"}, private=True)


@dataclass
class Enterprise:
    resource: str
    authorization_server: LocalAuthorizationServer
    idp: EnterpriseIdentityProvider

    async def id_jag_for(self, user: str, audience: str, resource: str) -> str:
        """The first leg as an enterprise client runs it: the ID token single sign-on gave it,
        exchanged at the identity provider for an ID-JAG (RFC 8693)."""
        form = {
            "grant_type": TOKEN_EXCHANGE,
            "requested_token_type": ID_JAG_TOKEN_TYPE,
            "subject_token": self.idp.id_token(user, APP),
            "subject_token_type": ID_TOKEN_TYPE,
            "audience": audience,
            "resource": resource,
            "scope": "mcp notes:read",
        }
        async with httpx2.AsyncClient() as http:
            answer = await http.post(f"{self.idp.issuer}/token", data=form, auth=(APP, IDP_SECRET))
        assert answer.status_code == 200, answer.text
        assert answer.json()["issued_token_type"] == ID_JAG_TOKEN_TYPE
        return str(answer.json()["access_token"])

    async def token_request(self, form: dict[str, str], auth: tuple[str, str] | None = (APP, APP_SECRET)) -> Any:
        """A token request, the client authenticated by client_secret_post (as it registered)."""
        credentials = {"client_id": auth[0], "client_secret": auth[1]} if auth else {}
        async with httpx2.AsyncClient() as http:
            return await http.post(f"{self.authorization_server.issuer}/token", data={**form, **credentials})


def mcp_server() -> FastMCP:
    mcp = FastMCP("enterprise")

    @mcp.tool
    def whoami() -> dict[str, Any]:
        """The caller, as the middleware attached it."""
        auth = get_auth()
        assert auth is not None
        return {"sub": auth.sub, "client_id": auth.client_id, "scopes": sorted(auth.scopes), "machine": auth.is_machine}

    @mcp.tool
    def delete_account() -> str:
        """For people only (tool_callers)."""
        return "deleted"

    @mcp.tool
    def nightly_sync() -> str:
        """For machines only (tool_callers)."""
        return "synced"

    return mcp


@pytest.fixture(scope="module")
def enterprise() -> Iterator[Enterprise]:
    port = free_port()
    resource = f"http://127.0.0.1:{port}/mcp"
    with ExitStack() as stack:
        idp = stack.enter_context(running_identity_provider())
        server = stack.enter_context(running_authorization_server(scopes_supported=["mcp", "notes:read", "admin"]))
        server.trust_identity_provider(idp.issuer, idp.jwks, resources=[resource])
        # The SDK's IdentityAssertionOAuthProvider authenticates with client_secret_post by default.
        server.register_client(
            client_id=APP, client_secret=APP_SECRET, grant_types=[], token_endpoint_auth_method="client_secret_post"
        )
        server.allow_identity_assertions(APP)
        server.register_client(client_id="batch-job", client_secret="batch-secret", grant_types=["client_credentials"])
        server.register_client(
            client_id="signed-job",
            jwks={"keys": [SIGNING_KEY.as_dict(private=False)]},
            grant_types=["client_credentials"],
        )
        idp.register_client(APP, IDP_SECRET)
        idp.allow(APP, audience=server.issuer, resources=[resource], scopes="mcp notes:read")
        app = MCPAuthMiddleware(
            mcp_server().http_app(),
            resource=resource,
            issuer=server.issuer,
            required_scopes=["mcp"],
            tool_callers={"delete_account": "users", "nightly_sync": "machines"},
        )
        stack.enter_context(serve(app, port=port))
        yield Enterprise(resource, server, idp)


async def call(enterprise: Enterprise, auth: httpx2.Auth, *tools: str) -> list[Any]:
    async with (
        httpx2.AsyncClient(auth=auth, timeout=20) as http,
        Client(streamable_http_client(enterprise.resource, http_client=http)) as client,
    ):
        return [await client.call_tool(tool, {}) for tool in tools]


async def test_a_user_signs_in_with_an_id_jag_from_the_enterprise(enterprise: Enterprise) -> None:
    provider = IdentityAssertionOAuthProvider(
        server_url=enterprise.resource,
        storage=MemoryStorage(),
        client_id=APP,
        client_secret=APP_SECRET,
        issuer=enterprise.authorization_server.issuer,
        assertion_provider=lambda audience, resource: enterprise.id_jag_for("alice", audience, resource),
    )
    whoami, deleted = await call(enterprise, provider, "whoami", "delete_account")
    assert whoami.structured_content == {
        "sub": "alice",
        "client_id": APP,
        "scopes": ["mcp", "notes:read"],
        "machine": False,
    }
    assert not deleted.is_error and "deleted" in str(deleted.content)
    with pytest.raises(ExceptionGroup) as refused:  # a person's client: 403, the tool is for machines
        await call(enterprise, provider, "nightly_sync")
    assert refused.group_contains(MCPError, match="error response")


async def test_machine_clients_with_a_secret_and_with_a_signed_assertion(enterprise: Enterprise) -> None:
    issuer = enterprise.authorization_server.issuer
    with_secret = ClientCredentialsOAuthProvider(
        enterprise.resource, MemoryStorage(), "batch-job", "batch-secret", scope="mcp", issuer=issuer
    )
    signed = SignedJWTParameters(
        issuer="signed-job", subject="signed-job", signing_key=SIGNING_KEY.as_pem(private=True).decode()
    )
    with_key = PrivateKeyJWTOAuthProvider(
        enterprise.resource,
        MemoryStorage(),
        "signed-job",
        signed.create_assertion_provider(),
        scope="mcp",
        issuer=issuer,
    )
    for provider, client_id in ((with_secret, "batch-job"), (with_key, "signed-job")):
        whoami, synced = await call(enterprise, provider, "whoami", "nightly_sync")
        assert whoami.structured_content == {
            "sub": client_id,
            "client_id": client_id,
            "scopes": ["mcp"],
            "machine": True,
        }
        assert not synced.is_error and "synced" in str(synced.content)
    with pytest.raises(ExceptionGroup) as refused:  # a machine: 403, the tool is for people
        await call(enterprise, with_secret, "delete_account")
    assert refused.group_contains(MCPError, match="error response")


def jwt_bearer(assertion: str, **extra: str) -> dict[str, str]:
    return {"grant_type": JWT_BEARER, "assertion": assertion, **extra}


async def test_each_id_jag_the_draft_refuses_is_refused_and_nothing_is_issued(enterprise: Enterprise) -> None:
    server, idp, resource = enterprise.authorization_server, enterprise.idp, enterprise.resource
    untrusted = EnterpriseIdentityProvider("http://127.0.0.1:1")

    def minted(**changes: Any) -> str:
        values: dict[str, Any] = {"sub": "alice", "client_id": APP, "audience": server.issuer, "resource": resource}
        values |= {"scopes": "mcp"} | changes
        return idp.id_jag(**values)

    good = minted()
    cases = {
        "another audience": (jwt_bearer(minted(audience="https://other-as.example")), "invalid_grant"),
        "an untrusted issuer": (
            jwt_bearer(
                untrusted.id_jag(sub="a", client_id=APP, audience=server.issuer, resource=resource, scopes="mcp")
            ),
            "invalid_grant",
        ),
        "expired": (jwt_bearer(minted(lifetime=-120)), "invalid_grant"),
        "another client": (jwt_bearer(minted(client_id="someone-else")), "invalid_grant"),
        "a resource not ours": (jwt_bearer(minted(resource="https://elsewhere.example/mcp")), "invalid_target"),
        "another resource asked": (jwt_bearer(good, resource="https://elsewhere.example/mcp"), "invalid_target"),
        "an ID token, not an ID-JAG": (jwt_bearer(idp.id_token("alice", APP)), "invalid_grant"),
        "no scope in common": (jwt_bearer(minted(scopes="notes:read"), scope="admin"), "invalid_scope"),
        "valid for too long": (jwt_bearer(minted(lifetime=86400)), "invalid_grant"),
        "a forged signature": (jwt_bearer(good[:-6] + "AAAAAA"), "invalid_grant"),
    }
    issued_before = len(server.by_access)
    for name, (form, error) in cases.items():
        answer = await enterprise.token_request(form)
        assert answer.status_code == 400 and answer.json()["error"] == error, (name, answer.text)
    unauthenticated = await enterprise.token_request(jwt_bearer(good), auth=(APP, "wrong"))
    assert unauthenticated.status_code == 401 and unauthenticated.json()["error"] == "invalid_client"
    assert len(server.by_access) == issued_before  # nothing issued

    first = await enterprise.token_request(jwt_bearer(good, resource=resource))
    replayed = await enterprise.token_request(jwt_bearer(good, resource=resource))
    assert first.status_code == 200 and first.json()["scope"] == "mcp"
    assert replayed.status_code == 400 and replayed.json()["error"] == "invalid_grant"
    assert "used before" in replayed.json()["error_description"]
    wider = await enterprise.token_request(jwt_bearer(minted(), scope="mcp admin"))
    assert wider.status_code == 200 and wider.json()["scope"] == "mcp"  # what was asked within what was asserted
    assert "refresh_token" not in first.json()
    metadata = server.metadata
    assert JWT_BEARER in metadata["grant_types_supported"]
    assert "private_key_jwt" in metadata["token_endpoint_auth_methods_supported"]


async def test_a_client_assertion_is_used_once_and_only_for_this_server(enterprise: Enterprise) -> None:
    import jwt as pyjwt  # the SDK's own signer (SignedJWTParameters)

    issuer = enterprise.authorization_server.issuer

    def assertion(audience: str, jti: str) -> str:
        claims = {"iss": "signed-job", "sub": "signed-job", "aud": audience, "exp": int(time.time()) + 60, "jti": jti}
        return pyjwt.encode(claims, SIGNING_KEY.as_pem(private=True).decode(), algorithm="RS256")

    def form(client_assertion: str) -> dict[str, str]:
        return {
            "grant_type": "client_credentials",
            "scope": "mcp",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": client_assertion,
        }

    once = assertion(issuer, "jti-1")
    first = await enterprise.token_request(form(once), auth=None)
    again = await enterprise.token_request(form(once), auth=None)
    elsewhere = await enterprise.token_request(form(assertion("https://other-as.example", "jti-2")), auth=None)
    assert first.status_code == 200, first.text
    # RFC 6749 §5.2: invalid_client, 400 (401 only for credentials in the Authorization header).
    assert again.status_code == 400 and again.json()["error"] == "invalid_client", again.text
    assert "used before" in again.json()["error_description"]
    assert elsewhere.status_code == 400 and elsewhere.json()["error"] == "invalid_client"


@pytest.mark.interop
async def test_an_id_jag_is_used_once_across_replicas_sharing_redis(redis_server: Redis) -> None:  # noqa: F811
    idp = EnterpriseIdentityProvider("https://idp.example.com")
    key = RSAKey.generate_key(2048, parameters={"kid": "shared"}, private=True)
    resource = "https://mcp.example.com/mcp"
    replicas = []
    for _ in range(2):
        replica = LocalAuthorizationServer(
            "https://as.example.com", key=key, scopes_supported=["mcp"], replay_storage=redis_server.url
        )
        replica.trust_identity_provider(idp.issuer, idp.jwks, resources=[resource])
        replica.register_client(
            client_id=APP, client_secret=APP_SECRET, grant_types=[], token_endpoint_auth_method="client_secret_post"
        )
        replica.allow_identity_assertions(APP)
        replicas.append(replica)
    assertion = idp.id_jag(
        sub="alice", client_id=APP, audience="https://as.example.com", resource=resource, scopes="mcp"
    )
    answers = []
    for replica in replicas:
        transport = httpx2.ASGITransport(app=replica.app)
        async with httpx2.AsyncClient(transport=transport, base_url="https://as.example.com") as http:
            form = {**jwt_bearer(assertion), "client_id": APP, "client_secret": APP_SECRET}
            answers.append(await http.post("/token", data=form))
    assert answers[0].status_code == 200, answers[0].text
    assert answers[1].status_code == 400 and json.loads(answers[1].text)["error"] == "invalid_grant"
