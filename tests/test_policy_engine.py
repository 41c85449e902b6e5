"""The request path with a policy engine (policy_engine.py): after the token and the scopes,
each call of the decided methods goes to the engine; a denial is a 403, an engine that is down,
slow or says something else than a decision is a 503, never an allow."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from typing import Any

import pytest

from mcp_auth_middleware import MCPAuthMiddleware
from mcp_auth_middleware.engines import Decision, DecisionRequest, EngineError
from mcp_auth_middleware.testing import LocalIssuer

from .conftest import ISSUER, RESOURCE, asgi_client, bearer, echo_app


class Recording:
    """An engine that allows what `allow` says, and records what it was asked."""

    def __init__(self, allow: Any = True, fail: Exception | None = None, delay: float = 0.0) -> None:
        self.allow, self.fail, self.delay = allow, fail, delay
        self.asked: list[DecisionRequest] = []
        self.batches = 0

    async def decide(self, request: DecisionRequest) -> Decision:
        self.asked.append(request)
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail is not None:
            raise self.fail
        allowed = self.allow(request) if callable(self.allow) else self.allow
        return Decision(allowed, "the test engine said so")

    async def decide_all(self, requests: Sequence[DecisionRequest]) -> list[Decision]:
        self.batches += 1
        return [await self.decide(r) for r in requests]


def call(tool: str, **arguments: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": tool, "arguments": arguments}}


def app(issuer: LocalIssuer, engine: Any, **options: Any) -> MCPAuthMiddleware:
    return MCPAuthMiddleware(
        echo_app(),
        resource=RESOURCE,
        authorization_servers=[ISSUER],
        validator=issuer.validator(),
        required_scopes=["mcp"],
        decision_engine=engine,
        **options,
    )


async def test_the_engine_decides_each_call_after_the_scopes(
    issuer: LocalIssuer, caplog: pytest.LogCaptureFixture
) -> None:
    engine = Recording(allow=lambda r: r.arguments.get("project") == r.caller.sub)
    token = issuer.mint_token(audience=RESOURCE, sub="alice", scopes=["mcp"])
    narrow = issuer.mint_token(audience=RESOURCE, sub="alice", scopes=["other"])
    async with asgi_client(app(issuer, engine)) as client:
        mine = await client.post("/mcp", json=call("delete_notes", project="alice"), headers=bearer(token))
        with caplog.at_level(logging.INFO, "mcp_auth_middleware"):
            theirs = await client.post("/mcp", json=call("delete_notes", project="bob"), headers=bearer(token))
        listing = await client.post(
            "/mcp", json={"jsonrpc": "2.0", "id": 2, "method": "tools/list"}, headers=bearer(token)
        )
        unscoped = await client.post("/mcp", json=call("delete_notes", project="alice"), headers=bearer(narrow))
        origin = await client.post(
            "/mcp", json=call("x", project="alice"), headers={**bearer(token), "Origin": "https://mcp.example.com"}
        )
    assert mine.status_code == 200
    assert theirs.status_code == 403 and 'error="insufficient_scope"' in theirs.headers["www-authenticate"]
    assert "The policy does not allow this call" in theirs.headers["www-authenticate"]
    assert (
        "policy engine denied tools/call delete_notes: the test engine said so" in caplog.text
    )  # the log, not the client
    assert "the test engine" not in theirs.text
    assert listing.status_code == 200  # tools/list is not a decided method
    assert unscoped.status_code == 403  # the scopes first: the engine was not asked
    assert [r.name for r in engine.asked] == ["delete_notes", "delete_notes", "x"]
    asked = engine.asked[0]
    assert asked.method == "tools/call" and asked.arguments == {"project": "alice"} and asked.caller.sub == "alice"
    assert asked.client_address == "127.0.0.1" and engine.asked[-1].origin == "https://mcp.example.com"
    assert origin.status_code == 200


@pytest.mark.parametrize(
    ("engine", "detail"),
    [
        (Recording(fail=EngineError("the decision point answered HTTP 500")), "answered HTTP 500"),
        (Recording(delay=5), "no decision within 0.2s"),
    ],
)
async def test_an_engine_that_cannot_say_is_a_503_never_an_allow(
    issuer: LocalIssuer, engine: Recording, detail: str, caplog: pytest.LogCaptureFixture
) -> None:
    token = issuer.mint_token(audience=RESOURCE, sub="alice", scopes=["mcp"])
    with caplog.at_level(logging.INFO, "mcp_auth_middleware"):
        async with asgi_client(app(issuer, engine, decision_timeout=0.2)) as client:
            answer = await client.post("/mcp", json=call("delete_notes"), headers=bearer(token))
    assert answer.status_code == 503 and "retry-after" in answer.headers
    assert detail in caplog.text


async def test_a_batch_is_one_decision_of_all_its_calls(issuer: LocalIssuer) -> None:
    engine = Recording(allow=lambda r: r.name != "delete_notes")
    token = issuer.mint_token(audience=RESOURCE, sub="alice", scopes=["mcp"])
    batch = [call("read_notes"), {**call("delete_notes"), "id": 2}]
    async with asgi_client(app(issuer, engine)) as client:
        answer = await client.post("/mcp", json=batch, headers=bearer(token))
        only_reads = await client.post("/mcp", json=[*batch[:1], {**call("whoami"), "id": 3}], headers=bearer(token))
    assert engine.batches == 2
    assert answer.status_code == 403 and only_reads.status_code == 200


async def test_decided_methods_and_options_that_cannot_work(issuer: LocalIssuer) -> None:
    engine = Recording(allow=False)
    token = issuer.mint_token(audience=RESOURCE, sub="alice", scopes=["mcp"])
    async with asgi_client(app(issuer, engine, decided_methods=["prompts/get"])) as client:
        tool = await client.post("/mcp", json=call("anything"), headers=bearer(token))
        prompt = await client.post(
            "/mcp",
            json={"jsonrpc": "2.0", "id": 1, "method": "prompts/get", "params": {"name": "p"}},
            headers=bearer(token),
        )
    assert tool.status_code == 200 and prompt.status_code == 403
    with pytest.raises(ValueError, match="decision_engine must have decide"):
        app(issuer, object())
    with pytest.raises(ValueError, match="decision_timeout is in seconds"):
        app(issuer, engine, decision_timeout=0)


def test_the_default_decided_methods_are_those_that_name_something() -> None:
    from mcp_auth_middleware.config import DEFAULT_DECIDED_METHODS
    from mcp_auth_middleware.mcp_headers import NAME_BEARING_METHODS

    assert set(DEFAULT_DECIDED_METHODS) == set(NAME_BEARING_METHODS)


def lister(tools: list[str]) -> Any:
    """An app answering every request with a tools/list result of `tools`."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "result": {"tools": [{"name": n} for n in tools]}}).encode()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})

    return app


@pytest.mark.parametrize("mode", ["hide", "annotate"])
async def test_lists_follow_the_engine_in_one_batch(issuer: LocalIssuer, mode: str) -> None:
    """Each entry is decided as a call without arguments (they are unknown), all in one batch."""
    from mcp_auth_middleware.listing import POLICY_META_KEY

    engine = Recording(allow=lambda r: r.name != "delete_notes")
    middleware = MCPAuthMiddleware(
        lister(["whoami", "delete_notes", "read_notes"]),
        resource=RESOURCE,
        authorization_servers=[ISSUER],
        validator=issuer.validator(),
        decision_engine=engine,
        list_filter=mode,
    )
    token = issuer.mint_token(audience=RESOURCE, sub="alice", scopes=["mcp"])
    async with asgi_client(middleware) as client:
        answer = await client.post(
            "/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, headers=bearer(token)
        )
    tools = answer.json()["result"]["tools"]
    assert engine.batches == 1 and all(r.arguments is None and r.method == "tools/call" for r in engine.asked)
    if mode == "hide":
        assert [t["name"] for t in tools] == ["whoami", "read_notes"]
    else:
        assert [t.get("_meta", {}).get(POLICY_META_KEY) for t in tools] == [None, "refused", None]


async def test_an_engine_that_cannot_say_hides_every_entry(issuer: LocalIssuer) -> None:
    engine = Recording(fail=EngineError("down"))
    middleware = MCPAuthMiddleware(
        lister(["whoami", "read_notes"]),
        resource=RESOURCE,
        authorization_servers=[ISSUER],
        validator=issuer.validator(),
        decision_engine=engine,
        list_filter="hide",
    )
    token = issuer.mint_token(audience=RESOURCE, sub="alice", scopes=["mcp"])
    async with asgi_client(middleware) as client:
        answer = await client.post(
            "/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, headers=bearer(token)
        )
    assert answer.status_code == 200 and answer.json()["result"]["tools"] == []
