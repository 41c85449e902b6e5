"""Properties of the list rewriting: whatever JSON a server answers a list with, in whatever
chunks, the client gets a valid list (shaped for the caller) or the app's bytes unchanged, and
never an exception."""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mcp_auth_middleware import MCPAuthMiddleware
from mcp_auth_middleware.testing import LocalIssuer

from .conftest import ISSUER, RESOURCE, http_scope

ISSUER_KEYS = LocalIssuer(ISSUER)
TOKEN = ISSUER_KEYS.mint_token(audience=RESOURCE, scopes=["mcp"])
RULES: dict[str, Any] = {"required_scopes": ["mcp"], "tool_scopes": {"delete_notes": ["notes:delete"]}}

# Any JSON value, strings with lone surrogates and numbers out of range included.
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
    | st.sampled_from(["\ud83d", "\udc00x"]),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4),
    max_leaves=20,
)
tools = st.lists(
    st.fixed_dictionaries(
        {"name": st.sampled_from(["whoami", "delete_notes", "other"])}, optional={"description": json_values}
    )
    | json_values,
    max_size=5,
)


def answer_for(tools_value: Any, extra: Any) -> bytes:
    document = {"jsonrpc": "2.0", "id": 1, "result": {"tools": tools_value, "x": extra}}
    return json.dumps(document).encode()  # ASCII, lone surrogates as \u escapes


def chunked(body: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(c, len(body)) for c in cuts} | {0, len(body)})
    return [body[a:b] for a, b in itertools.pairwise(points)] or [b""]


def run(chunks: list[bytes], media_type: bytes, mode: str) -> tuple[int, bytes]:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", media_type)]})
        for index, chunk in enumerate(chunks):
            await send({"type": "http.response.body", "body": chunk, "more_body": index < len(chunks) - 1})

    middleware = MCPAuthMiddleware(
        app,
        resource=RESOURCE,
        authorization_servers=[ISSUER],
        validator=ISSUER_KEYS.validator(),
        list_filter=mode,
        **RULES,
    )
    scope = http_scope((b"authorization", f"Bearer {TOKEN}".encode()), (b"content-type", b"application/json"))
    request = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}).encode()
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": request, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(middleware(scope, receive, send))
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


def check_list(body: bytes, original: bytes) -> None:
    """The app's bytes, or a valid JSON list without what the caller may not call."""
    if body == original:
        return
    document = json.loads(body)  # strict JSON: no NaN, no Infinity
    json.dumps(document, allow_nan=False)
    names = [t.get("name") for t in document["result"]["tools"] if isinstance(t, dict)]
    assert "delete_notes" not in names


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    tools=tools,
    extra=json_values,
    cuts=st.lists(st.integers(0, 2000), max_size=6),
    mode=st.sampled_from(["hide", "annotate"]),
)
def test_a_json_list_in_any_chunks_is_a_valid_list_or_the_apps_bytes(
    tools: Any, extra: Any, cuts: list[int], mode: str
) -> None:
    body = answer_for(tools, extra)
    status, out = run(chunked(body, cuts), b"application/json", mode)
    assert status == 200
    if mode == "hide":
        check_list(out, body)
    else:
        assert json.loads(out)["result"]["tools"] is not None


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    tools=tools,
    extra=json_values,
    cuts=st.lists(st.integers(0, 2000), max_size=8),
    ending=st.sampled_from([b"\n\n", b"\r\n\r\n", b"\r\r", b"\n\r\n", b"\r\n\n"]),
)
def test_an_event_stream_in_any_chunks_keeps_every_event_and_shapes_the_list(
    tools: Any, extra: Any, cuts: list[int], ending: bytes
) -> None:
    list_event = b"event: message" + ending[:1] + b"data: " + answer_for(tools, extra) + ending
    other = b'data: {"jsonrpc":"2.0","method":"notifications/progress"}' + ending
    stream = other + list_event + other
    status, out = run(chunked(stream, cuts), b"text/event-stream", "hide")
    assert status == 200
    assert out.startswith(other) and out.endswith(other)
    middle = out[len(other) : len(out) - len(other)]
    assert middle.endswith(ending)
    data = [line[6:] for line in middle.splitlines() if line.startswith(b"data: ")]
    assert len(data) == 1
    check_list(data[0], answer_for(tools, extra))
