"""Lists that match the rules that decide calls (listing.py), on an app that answers as MCP
servers do: JSON or server-sent events, batches, pages, cache hints, compressed bodies."""

from __future__ import annotations

import gzip
import json
import logging
from collections.abc import Callable
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mcp_auth_middleware import MCPAuthMiddleware
from mcp_auth_middleware.listing import SCOPES_META_KEY
from mcp_auth_middleware.testing import LocalIssuer

from .conftest import ISSUER, RESOURCE, asgi_client, bearer

TOOLS = [
    {"name": "whoami", "inputSchema": {"type": "object"}},
    {"name": "read_notes", "inputSchema": {"type": "object"}, "_meta": {"other": 1}},
    {"name": "delete_notes", "inputSchema": {"type": "object"}},
]
RESULTS: dict[str, dict[str, Any]] = {
    "tools/list": {"tools": TOOLS, "ttlMs": 60000, "cacheScope": "public"},
    "prompts/list": {"prompts": [{"name": "incident"}, {"name": "summary"}]},
    "resources/list": {
        "resources": [{"uri": "file:///notes/1", "name": "n"}, {"uri": "file:///secret/k", "name": "k"}]
    },
    "resources/templates/list": {"resourceTemplates": [{"uriTemplate": "file:///secret/{id}", "name": "s"}]},
}
RULES = {
    "required_scopes": ["mcp"],
    "tool_scopes": {"read_notes": ["notes:read"], "delete_notes": ["notes:delete"]},
    "prompt_scopes": {"incident": ["oncall"]},
    "resource_scopes": {"file:///secret/*": ["secrets"]},
}


async def mcp_endpoint(request: Request) -> Response:
    """Answers each JSON-RPC request with its list result; SSE when the client asks for it only
    (`accept: text/event-stream`), gzip when `x-gzip` is set, a page cursor with `x-page`, a
    broken body with `x-broken`."""
    document = json.loads(await request.body())
    messages = document if isinstance(document, list) else [document]
    answers = []
    for message in messages:
        result = json.loads(json.dumps(RESULTS.get(message["method"], {})))
        if request.headers.get("x-page"):
            result["nextCursor"] = "page-2"
        answers.append({"jsonrpc": "2.0", "id": message["id"], "result": result})
    payload = answers if isinstance(document, list) else answers[0]
    if request.headers.get("accept") == "text/event-stream":
        events = b'event: message\ndata: {"jsonrpc":"2.0","method":"notifications/progress"}\n\n'
        events += b"".join(b"event: message\nid: 1\ndata: " + json.dumps(a).encode() + b"\n\n" for a in answers)
        return Response(events, media_type="text/event-stream")
    body = json.dumps(payload).encode()
    if request.headers.get("x-broken"):
        return Response(body[:-1], media_type="application/json")
    if request.headers.get("x-gzip"):
        return Response(gzip.compress(body), media_type="application/json", headers={"content-encoding": "gzip"})
    return Response(body, media_type="application/json")


async def replay(request: Request) -> Response:
    """A resumed stream (`GET` with `Last-Event-ID`) replaying the answers of earlier requests;
    as JSON, for a GET that is no stream."""
    answers = [
        {"jsonrpc": "2.0", "id": 5, "result": {"tools": TOOLS}},
        {"jsonrpc": "2.0", "id": 6, "result": {"content": [{"type": "text", "text": "tools"}]}},
    ]
    if request.headers.get("accept") != "text/event-stream":
        return Response(json.dumps(answers[0]), media_type="application/json")
    events = b"".join(b"id: %d\ndata: %s\n\n" % (n, json.dumps(a).encode()) for n, a in enumerate(answers))
    return Response(events, media_type="text/event-stream")


def app(**options: Any) -> MCPAuthMiddleware:
    issuer = options.pop("issuer")
    inner = Starlette(routes=[Route("/mcp", mcp_endpoint, methods=["POST"]), Route("/mcp", replay, methods=["GET"])])
    return MCPAuthMiddleware(
        inner, resource=RESOURCE, authorization_servers=[ISSUER], validator=issuer.validator(), **{**RULES, **options}
    )


def rpc(method: str, request_id: int = 1) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "method": method, "params": {}}


Caller = Callable[..., Any]


@pytest.fixture
def token(issuer: LocalIssuer) -> Callable[..., str]:
    def mint(*scopes: str) -> str:
        return issuer.mint_token(audience=RESOURCE, scopes=["mcp", *scopes])

    return mint


async def posted(issuer: LocalIssuer, token: str, method: str = "tools/list", **options: Any) -> Any:
    headers = {**bearer(token), **options.pop("headers", {})}
    body = options.pop("body", rpc(method))
    async with asgi_client(app(issuer=issuer, **options)) as client:
        return await client.post("/mcp", json=body, headers=headers)


async def listed(issuer: LocalIssuer, token: str, method: str = "tools/list", **options: Any) -> Any:
    answer = await posted(issuer, token, method, **options)
    assert answer.status_code == 200
    assert int(answer.headers.get("content-length", len(answer.content))) == len(answer.content)
    return answer


async def test_annotate_is_the_default_and_keeps_every_entry(issuer: LocalIssuer, token: Caller) -> None:
    """Every tool stays listed (the step-up path stays open); each says what it needs."""
    tools = (await listed(issuer, token())).json()["result"]["tools"]
    assert [t["name"] for t in tools] == ["whoami", "read_notes", "delete_notes"]
    assert "_meta" not in tools[0]  # only the global scopes: nothing to say
    assert tools[1]["_meta"] == {"other": 1, SCOPES_META_KEY: ["mcp", "notes:read"]}  # the app's _meta kept
    assert tools[2]["_meta"] == {SCOPES_META_KEY: ["mcp", "notes:delete"]}


async def test_hide_keeps_what_the_caller_may_call(issuer: LocalIssuer, token: Caller) -> None:
    narrow = (await listed(issuer, token(), list_filter="hide")).json()["result"]
    assert [t["name"] for t in narrow["tools"]] == ["whoami"]
    assert narrow["cacheScope"] == "private" and narrow["ttlMs"] == 60000  # SEP-2549: never shared
    reader = (await listed(issuer, token("notes:read"), list_filter="hide")).json()["result"]
    assert [t["name"] for t in reader["tools"]] == ["whoami", "read_notes"]
    assert reader["cacheScope"] == "private"  # it still depends on who asks


async def test_hide_follows_the_scope_hierarchy(issuer: LocalIssuer, token: Caller) -> None:
    implied = {"notes": ["notes:read", "notes:delete"]}
    result = (await listed(issuer, token("notes"), list_filter="hide", implied_scopes=implied)).json()["result"]
    assert [t["name"] for t in result["tools"]] == ["whoami", "read_notes", "delete_notes"]
    prefixed = (await listed(issuer, token("notes"), list_filter="hide", prefix_implies=True)).json()["result"]
    assert len(prefixed["tools"]) == 3


async def test_all_leaves_lists_untouched(issuer: LocalIssuer, token: Caller) -> None:
    answer = await listed(issuer, token(), list_filter="all")
    assert answer.json()["result"] == RESULTS["tools/list"]


@pytest.mark.parametrize(
    ("method", "kept"),
    [
        ("prompts/list", ["summary"]),
        ("resources/list", ["file:///notes/1"]),
        ("resources/templates/list", []),  # file:///secret/{id} is file:///secret/x: needs secrets
    ],
)
async def test_prompts_and_resources_by_the_same_rules(
    issuer: LocalIssuer, token: Caller, method: str, kept: list[str]
) -> None:
    result = (await listed(issuer, token(), method, list_filter="hide")).json()["result"]
    member, name = {"prompts/list": ("prompts", "name"), "resources/list": ("resources", "uri")}.get(
        method, ("resourceTemplates", "uriTemplate")
    )
    assert [entry[name] for entry in result[member]] == kept


async def test_event_streams_rewrite_only_the_list_event(issuer: LocalIssuer, token: Caller) -> None:
    answer = await listed(issuer, token(), list_filter="hide", headers={"accept": "text/event-stream"})
    events = answer.content.split(b"\n\n")
    assert events[0] == b'event: message\ndata: {"jsonrpc":"2.0","method":"notifications/progress"}'  # untouched
    lines = events[1].split(b"\n")
    assert lines[:2] == [b"event: message", b"id: 1"]  # the event's other fields kept
    assert [t["name"] for t in json.loads(lines[2].removeprefix(b"data: "))["result"]["tools"]] == ["whoami"]


async def test_a_resumed_stream_replaying_a_list_is_rewritten_too(issuer: LocalIssuer, token: Caller) -> None:
    async with asgi_client(app(issuer=issuer, list_filter="hide")) as client:
        stream = await client.get("/mcp", headers={**bearer(token()), "accept": "text/event-stream"})
        plain = await client.get("/mcp", headers=bearer(token()))
    events = [json.loads(line[6:]) for line in stream.text.splitlines() if line.startswith("data: ")]
    assert [t["name"] for t in events[0]["result"]["tools"]] == ["whoami"]  # known by its shape
    assert events[1]["result"] == {"content": [{"type": "text", "text": "tools"}]}  # not a list: as it was
    assert [line for line in stream.text.splitlines() if line.startswith("id: ")] == ["id: 0", "id: 1"]
    assert len(plain.json()["result"]["tools"]) == 3  # a GET answered with JSON is no stream: untouched


async def test_a_batch_rewrites_each_list(issuer: LocalIssuer, token: Caller) -> None:
    body = [rpc("tools/list", 1), rpc("prompts/list", 2)]
    answers = (await listed(issuer, token("oncall"), list_filter="hide", body=body)).json()
    assert [t["name"] for t in answers[0]["result"]["tools"]] == ["whoami"]
    assert [p["name"] for p in answers[1]["result"]["prompts"]] == ["incident", "summary"]


async def test_pages_keep_their_cursor(issuer: LocalIssuer, token: Caller) -> None:
    result = (await listed(issuer, token(), list_filter="hide", headers={"x-page": "1"})).json()["result"]
    assert result["nextCursor"] == "page-2" and [t["name"] for t in result["tools"]] == ["whoami"]


@pytest.mark.parametrize(
    ("header", "warning"),
    [
        ("x-gzip", "a list response is gzip-encoded: it passes unfiltered"),
        ("x-broken", "a list response is not valid JSON: it passes unfiltered"),
        ("x-large", "a list response is larger than 100 bytes: it passes unfiltered"),
    ],
)
async def test_a_list_that_cannot_be_read_passes_unchanged_with_a_warning_once(
    issuer: LocalIssuer,
    token: Caller,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    header: str,
    warning: str,
) -> None:
    if header == "x-large":
        monkeypatch.setattr("mcp_auth_middleware.listing.MAX_LIST_BODY", 100)
    middleware = app(issuer=issuer, list_filter="hide")
    bodies = []
    async with asgi_client(middleware) as client:
        for _ in range(2):
            answer = await client.post("/mcp", json=rpc("tools/list"), headers={**bearer(token()), header: "1"})
            assert answer.status_code == 200
            if header != "x-gzip":  # (httpx2 hands over the gzip body decoded)
                assert int(answer.headers["content-length"]) == len(answer.content)
            bodies.append(answer.content)
    direct = Starlette(routes=[Route("/mcp", mcp_endpoint, methods=["POST"])])
    async with asgi_client(direct) as client:
        unfiltered = (await client.post("/mcp", json=rpc("tools/list"), headers={header: "1"})).content
    assert bodies == [unfiltered, unfiltered]  # never corrupted: the app's bytes
    warnings = [r.getMessage() for r in caplog.records if "passes unfiltered" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].startswith(warning)


async def test_calls_other_than_lists_pass_as_they_are(issuer: LocalIssuer, token: Caller) -> None:
    async with asgi_client(app(issuer=issuer)) as client:
        answer = await client.post("/mcp", json=rpc("tools/call"), headers=bearer(token()))
    assert answer.json()["result"] == {}


async def test_rules_that_name_nothing_are_said_once(
    issuer: LocalIssuer, token: Caller, caplog: pytest.LogCaptureFixture
) -> None:
    """A typo leaves a tool unprotected without a word, unless the lists are compared with the rules."""
    rules = {"delete_note": ["notes:delete"], "read_notes": ["notes:read"]}  # delete_note: a typo
    middleware = app(issuer=issuer, tool_scopes=rules, prompt_scopes={"incidnet": ["oncall"]})
    with caplog.at_level(logging.WARNING, logger="mcp_auth_middleware"):
        async with asgi_client(middleware) as client:
            for method in ("tools/list", "tools/list", "prompts/list"):
                await client.post("/mcp", json=rpc(method), headers=bearer(token()))
    lines = [r.getMessage() for r in caplog.records if "protects nothing" in r.getMessage()]
    assert lines == [
        "tool_scopes names tool 'delete_note', which the server does not list: it protects nothing "
        "(did you mean 'delete_notes'?)",
        "prompt_scopes names prompt 'incidnet', which the server does not list: it protects nothing "
        "(did you mean 'incident'?)",
    ]


async def test_a_page_is_not_the_whole_list(
    issuer: LocalIssuer, token: Caller, caplog: pytest.LogCaptureFixture
) -> None:
    middleware = app(issuer=issuer, tool_scopes={"on_page_two": ["x"]})
    async with asgi_client(middleware) as client:
        await client.post("/mcp", json=rpc("tools/list"), headers={**bearer(token()), "x-page": "1"})
    assert "protects nothing" not in caplog.text  # the rest may be on the next page


async def test_strict_rules_name_every_uncovered_tool(
    issuer: LocalIssuer, token: Caller, caplog: pytest.LogCaptureFixture
) -> None:
    middleware = app(issuer=issuer, required_scopes=[], strict_rules=True)
    async with asgi_client(middleware) as client:
        await client.post("/mcp", json=rpc("tools/list"), headers=bearer(token()))
    assert "tool 'whoami' is listed but no rule covers it" in caplog.text
    assert "tool 'read_notes'" not in caplog.text


async def test_strict_rules_without_any_rule_name_every_tool(
    issuer: LocalIssuer, token: Caller, caplog: pytest.LogCaptureFixture
) -> None:
    bare = {"required_scopes": [], "tool_scopes": {}, "prompt_scopes": {}, "resource_scopes": {}}
    async with asgi_client(app(issuer=issuer, **bare, strict_rules=True)) as client:
        await client.post("/mcp", json=rpc("tools/list"), headers=bearer(token()))
    uncovered = [r.getMessage().split("'")[1] for r in caplog.records if "no rule covers it" in r.getMessage()]
    assert uncovered == ["delete_notes", "read_notes", "whoami"]
    caplog.clear()
    async with asgi_client(app(issuer=issuer, **bare)) as client:  # without strict_rules: never read
        await client.post("/mcp", json=rpc("tools/list"), headers=bearer(token()))
    assert "no rule covers it" not in caplog.text


async def test_a_scope_rule_sees_each_entry_as_a_call_with_empty_arguments(issuer: LocalIssuer, token: Caller) -> None:
    seen: list[tuple[str, Any]] = []

    def rule(method: str, params: Any) -> list[str] | None:
        seen.append((method, params))
        if method == "tools/call" and params["name"] == "whoami" and not params["arguments"].get("quiet"):
            return ["talk"]
        return None

    tools = (await listed(issuer, token(), list_filter="hide", scope_rule=rule)).json()["result"]["tools"]
    assert [t["name"] for t in tools] == []  # whoami needs talk; the others their rules
    assert ("tools/call", {"name": "whoami", "arguments": {}}) in seen
    tools = (await listed(issuer, token("talk", "notes:read"), scope_rule=rule)).json()["result"]["tools"]
    assert [t.get("_meta", {}).get(SCOPES_META_KEY) for t in tools] == [
        ["mcp", "talk"],
        ["mcp", "notes:read"],
        ["mcp", "notes:delete"],
    ]  # annotate: the same list for every caller, whatever its scopes


def test_list_filter_is_one_of_three() -> None:
    with pytest.raises(ValueError, match="list_filter must be 'annotate', 'hide' or 'all'"):
        MCPAuthMiddleware(Starlette(), resource=RESOURCE, issuer=ISSUER, list_filter="filter")  # type: ignore[arg-type]


# -- What a hostile client or an unusual server does to the lists ---------------------------


async def test_a_batch_that_reuses_an_id_is_refused(issuer: LocalIssuer, token: Caller) -> None:
    # The prompts list would otherwise be taken for the tools list (same id), and pass unfiltered.
    batch = [rpc("prompts/list", 1), rpc("tools/list", 1)]
    answer = await posted(issuer, token(), body=batch, list_filter="hide")
    assert answer.status_code == 400
    assert 'error="invalid_request"' in answer.headers["www-authenticate"]
    assert "share an id" in answer.json()["error_description"]
    # Numbers are numbers to a server: 1 and 1.0 are one id.
    mixed = [rpc("prompts/list", 1), {**rpc("tools/call"), "id": 1.0}]
    assert (await posted(issuer, token(), body=mixed, list_filter="hide")).status_code == 400
    # Distinct ids (a string and a number differ) are answered and shaped as before.
    fine = await listed(issuer, token(), body=[rpc("prompts/list", 1), {**rpc("tools/list"), "id": "1"}])
    assert fine.status_code == 200 and len(fine.json()) == 2


@pytest.mark.parametrize("request_id", [1.0, True, None, [1], {"a": 1}])
async def test_a_list_request_whose_id_a_server_could_read_as_another_is_refused(
    issuer: LocalIssuer, token: Caller, request_id: Any
) -> None:
    body = {**rpc("tools/list"), "id": request_id}
    answer = await posted(issuer, token(), body=body, list_filter="hide")
    assert answer.status_code == 400
    assert "string or an integer" in answer.json()["error_description"]


async def test_a_hidden_list_with_a_ttl_but_no_cache_scope_is_private(issuer: LocalIssuer, token: Caller) -> None:
    # SEP-2549: a cache hint without a scope may be shared; a list that depends on the caller may not.
    payload = {"jsonrpc": "2.0", "id": 1, "result": {"tools": TOOLS, "ttlMs": 60000}}
    result = (await raw_list(issuer, token(), [json.dumps(payload).encode()], list_filter="hide"))["result"]
    assert result["cacheScope"] == "private" and [t["name"] for t in result["tools"]] == ["whoami"]


def list_app(chunks: list[bytes], media_type: bytes = b"application/json", **headers: bytes) -> Any:
    """An ASGI app answering with `chunks`, as a server that streams its answer."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        extra = [(name.replace("_", "-").encode(), value) for name, value in headers.items()]
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", media_type), *extra]})
        for index, chunk in enumerate(chunks):
            await send({"type": "http.response.body", "body": chunk, "more_body": index < len(chunks) - 1})

    return app


async def raw_list(
    issuer: LocalIssuer, token: str, chunks: list[bytes], media_type: bytes = b"application/json", **options: Any
) -> Any:
    """What the client gets for a tools/list answered by `chunks` through the middleware."""
    middleware = MCPAuthMiddleware(
        list_app(chunks, media_type),
        resource=RESOURCE,
        authorization_servers=[ISSUER],
        validator=issuer.validator(),
        **{**RULES, **options},
    )
    async with asgi_client(middleware) as client:
        answer = await client.post("/mcp", json=rpc("tools/list"), headers=bearer(token))
    assert answer.status_code == 200
    if media_type == b"text/event-stream":
        return answer.content
    assert int(answer.headers["content-length"]) == len(answer.content)
    return json.loads(answer.content)


async def test_a_lone_surrogate_in_a_list_is_written_back_escaped(issuer: LocalIssuer, token: Caller) -> None:
    # Valid JSON a JavaScript server writes when it cuts a string inside an emoji.
    body = b'{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"whoami","description":"cut \\ud83d"},' + (
        b'{"name":"delete_notes"}]}}'
    )
    answer = await raw_list(issuer, token(), [body], list_filter="hide")
    assert answer["result"]["tools"] == [{"name": "whoami", "description": "cut \ud83d"}]
    events = await raw_list(issuer, token(), [b"data: " + body + b"\n\n"], b"text/event-stream", list_filter="hide")
    assert b"delete_notes" not in events and b"\\ud83d" in events


@pytest.mark.parametrize(
    "body",
    [
        # Nested deeper than the interpreter reads: the app's bytes, never a RecursionError.
        b'{"jsonrpc":"2.0","id":1,"result":{"tools":[],"x":' + b"[" * 5000 + b"]" * 5000 + b"}}",
        # Python reads 1e400 as inf, and NaN as nan: JSON cannot write either back.
        b'{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"delete_notes","n":1e400}]}}',
        b'{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"delete_notes","n":NaN}]}}',
    ],
)
async def test_a_list_that_cannot_be_written_back_as_read_passes_as_the_app_sent_it(
    issuer: LocalIssuer, token: Caller, body: bytes
) -> None:
    middleware = MCPAuthMiddleware(
        list_app([body]), resource=RESOURCE, authorization_servers=[ISSUER], validator=issuer.validator(), **RULES
    )
    async with asgi_client(middleware) as client:
        answer = await client.post("/mcp", json=rpc("tools/list"), headers=bearer(token()))
    assert answer.status_code == 200 and answer.content == body
    assert b"Infinity" not in answer.content


async def test_a_compressing_app_is_asked_for_an_uncompressed_list(issuer: LocalIssuer, token: Caller) -> None:
    # Starlette's GZipMiddleware compresses what the client accepts: the middleware, which must
    # read the list to hide entries, asks the app for it uncompressed.
    from starlette.middleware.gzip import GZipMiddleware

    big = [{"name": f"tool_{n}", "description": "x" * 100} for n in range(30)]
    tools = [*big, {"name": "delete_notes"}]

    async def endpoint(request: Request) -> Response:
        answer = {"jsonrpc": "2.0", "id": 1, "result": {"tools": tools}}
        return Response(json.dumps(answer), media_type="application/json")

    inner = GZipMiddleware(Starlette(routes=[Route("/mcp", endpoint, methods=["POST"])]), minimum_size=10)
    middleware = MCPAuthMiddleware(
        inner,
        resource=RESOURCE,
        authorization_servers=[ISSUER],
        validator=issuer.validator(),
        **RULES,
        list_filter="hide",
    )
    async with asgi_client(middleware) as client:
        listed_ = await client.post(
            "/mcp", json=rpc("tools/list"), headers={**bearer(token()), "Accept-Encoding": "gzip"}
        )
        called = await client.post(
            "/mcp", json=rpc("tools/call"), headers={**bearer(token()), "Accept-Encoding": "gzip"}
        )
    assert listed_.headers.get("content-encoding") is None
    assert [t["name"] for t in listed_.json()["result"]["tools"]] == [t["name"] for t in big]
    assert called.headers.get("content-encoding") == "gzip"  # other answers are compressed as the app likes


@pytest.mark.parametrize("ending", [b"\n\r\n", b"\r\n\n", b"\r\r\n", b"\n\r", b"\r\n\r\n", b"\n\n"])
async def test_every_way_an_event_ends_is_recognised(issuer: LocalIssuer, token: Caller, ending: bytes) -> None:
    answer = {"jsonrpc": "2.0", "id": 1, "result": {"tools": TOOLS}}
    line_end = ending[:1] if ending[:2] != b"\r\n" else b"\r\n"
    event = b"event: message" + line_end + b"data: " + json.dumps(answer).encode() + ending
    streamed = await raw_list(issuer, token(), [event, b": keep-alive\n\n"], b"text/event-stream", list_filter="hide")
    assert b"delete_notes" not in streamed and b"whoami" in streamed
    assert streamed.endswith(b": keep-alive\n\n")


async def test_a_list_event_split_into_many_chunks_is_rewritten_once(issuer: LocalIssuer, token: Caller) -> None:
    answer = {"jsonrpc": "2.0", "id": 1, "result": {"tools": TOOLS}}
    event = b"data: " + json.dumps(answer).encode() + b"\r\n\r\n"
    chunks = [event[i : i + 1] for i in range(len(event))]  # a CR and its LF in different chunks too
    streamed = await raw_list(issuer, token(), chunks, b"text/event-stream", list_filter="hide")
    assert streamed.count(b"data: ") == 1 and b"delete_notes" not in streamed and streamed.endswith(b"\r\n\r\n")
