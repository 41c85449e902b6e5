"""The AuthZEN client against a decision point that answers as a test says: the request shape,
the bearer token, the cache and its single flight, batches, and answers that are no decision
(never an allow). The real decision point (Cerbos) is in test_scenarios.py."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx2
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mcp_auth_middleware import AuthInfo
from mcp_auth_middleware.engines import AuthZEN, DecisionRequest, EngineError

ALICE = AuthInfo("alice", "claude", frozenset({"mcp"}), issuer="https://auth.example.com", claims={"roles": ["ops"]})
PDP = "https://pdp.example.com"


class DecisionPoint:
    def __init__(self, answer: Any = None, delay: float = 0.0) -> None:
        self.answer, self.delay = answer, delay
        self.seen: list[tuple[str, dict[str, Any], str | None]] = []

    def app(self) -> Starlette:
        async def discovery(request: Request) -> Response:
            here = str(request.base_url).rstrip("/")  # PDP, or the address it is served at
            return JSONResponse(
                {
                    "policy_decision_point": here,
                    "access_evaluation_endpoint": f"{here}/access/v1/evaluation",
                    "access_evaluations_endpoint": f"{here}/access/v1/evaluations",
                }
            )

        async def evaluate(request: Request) -> Response:
            body = json.loads(await request.body())
            self.seen.append((request.url.path, body, request.headers.get("authorization")))
            await asyncio.sleep(self.delay)
            if self.answer is not None:
                return self.answer if isinstance(self.answer, Response) else JSONResponse(self.answer)
            if "evaluations" in body:
                return JSONResponse(
                    {"evaluations": [{"decision": e["resource"]["id"] != "delete_notes"} for e in body["evaluations"]]}
                )
            return JSONResponse(
                {"decision": body["resource"]["id"] != "delete_notes", "context": {"reason_admin": {"en": "rule 7"}}}
            )

        return Starlette(
            routes=[
                Route("/.well-known/authzen-configuration", discovery),
                Route("/access/v1/evaluation", evaluate, methods=["POST"]),
                Route("/access/v1/evaluations", evaluate, methods=["POST"]),
            ]
        )

    def engine(self, **options: Any) -> AuthZEN:
        client = httpx2.AsyncClient(transport=httpx2.ASGITransport(app=self.app()))
        return AuthZEN(PDP, http_client=client, **options)


def call(name: str, **arguments: Any) -> DecisionRequest:
    return DecisionRequest(ALICE, "tools/call", name, arguments, client_address="203.0.113.7")


async def test_the_request_as_the_mcp_profile_maps_a_call() -> None:
    point = DecisionPoint()
    engine = point.engine(auth="pdp-token")
    allowed = await engine.decide(call("read_notes", project="x"))
    denied = await engine.decide(call("delete_notes"))
    path, body, authorization = point.seen[0]
    assert allowed.allowed and not denied.allowed and "rule 7" in denied.reason
    assert path == "/access/v1/evaluation" and authorization == "Bearer pdp-token"
    assert body == {
        "subject": {
            "type": "user",
            "id": "alice",
            "properties": {
                "client_id": "claude",
                "scopes": ["mcp"],
                "issuer": "https://auth.example.com",
                "machine": False,
                "roles": ["ops"],
            },
        },
        "action": {"name": "tools/call"},
        "resource": {"type": "tool", "id": "read_notes", "properties": {"arguments": {"project": "x"}}},
        "context": {"client_address": "203.0.113.7"},
    }


async def test_decisions_are_kept_briefly_and_concurrent_ones_share_a_call() -> None:
    point = DecisionPoint(delay=0.05)
    engine = point.engine(cache_ttl=60)
    decisions = await asyncio.gather(*(engine.decide(call("read_notes")) for _ in range(10)))
    again = await engine.decide(call("read_notes"))
    other = await engine.decide(call("read_notes", project="y"))  # other arguments: asked
    assert all(d.allowed for d in [*decisions, again, other])
    assert engine.calls == 2


async def test_a_batch_is_one_request() -> None:
    point = DecisionPoint()
    engine = point.engine()
    decisions = await engine.decide_all([call("read_notes"), call("delete_notes"), call("whoami")])
    assert [d.allowed for d in decisions] == [True, False, True]
    assert [path for path, _, _ in point.seen] == ["/access/v1/evaluations"]


@pytest.mark.parametrize(
    "answer",
    [
        {"decision": "yes"},
        {"decision": 1},
        {},
        ["decision", True],
        Response("<html>", 200, media_type="text/html"),
        JSONResponse({"decision": True}, 500),
        JSONResponse({"error": "unauthorized"}, 401),
    ],
)
async def test_an_answer_that_is_no_decision_is_never_an_allow(answer: Any) -> None:
    engine = DecisionPoint(answer).engine()
    with pytest.raises(EngineError):
        await engine.decide(call("read_notes"))


async def test_a_batch_of_the_wrong_length_is_no_decision() -> None:
    engine = DecisionPoint({"evaluations": [{"decision": True}]}).engine()
    with pytest.raises(EngineError, match="no list of 2 evaluations"):
        await engine.decide_all([call("a"), call("b")])


def test_options_that_cannot_work() -> None:
    with pytest.raises(ValueError, match="decision point's URL"):
        AuthZEN()
    with pytest.raises(ValueError, match="plain http"):
        AuthZEN("http://pdp.internal:3592")


async def test_the_engine_and_its_token_from_the_variables() -> None:
    """MCP_AUTH_DECISION_ENGINE=authzen:URL and MCP_AUTH_DECISION_ENGINE_TOKEN (the gateway command's
    only way to name one): the decision point is asked, with the token."""
    from mcp_auth_middleware import AuthConfig
    from mcp_auth_middleware.testing import serve

    point = DecisionPoint()
    with serve(point.app()) as url:
        config = AuthConfig.from_env(
            {
                "MCP_AUTH_RESOURCE": "https://mcp.example.com/mcp",
                "MCP_AUTH_ISSUER": "https://auth.example.com",
                "MCP_AUTH_DECISION_ENGINE": f"authzen:{url}",
                "MCP_AUTH_DECISION_ENGINE_TOKEN": "pdp-token",
            }
        )
        assert (await config.decision_engine.decide(call("read_notes"))).allowed
        await config.decision_engine.aclose()
    assert [(path, authorization) for path, _, authorization in point.seen] == [
        ("/access/v1/evaluation", "Bearer pdp-token")
    ]


async def test_client_credentials_to_the_decision_point() -> None:
    """`auth=ClientCredentialsBearer(...)`: a token of the decision point's authorization server."""
    from mcp_auth_middleware.client_auth import ClientCredentialsBearer, client_authentication
    from mcp_auth_middleware.testing import running_authorization_server, serve

    point = DecisionPoint()
    with running_authorization_server(scopes_supported=["pdp"]) as server, serve(point.app()) as url:
        server.register_client(client_id="pep", client_secret="pep-secret", grant_types=["client_credentials"])
        pep = client_authentication("pep", "pep-secret", "client_secret_basic", None)
        bearer = ClientCredentialsBearer(server.metadata["token_endpoint"], pep, "pdp")
        engine = AuthZEN(evaluation_endpoint=f"{url}/access/v1/evaluation", auth=bearer, allow_http=True)
        assert (await engine.decide(call("read_notes"))).allowed
        await engine.aclose()
    authorization = point.seen[0][2]
    assert authorization is not None and authorization.startswith("Bearer ")
    assert server.by_access[authorization[7:]].client_id == "pep"
