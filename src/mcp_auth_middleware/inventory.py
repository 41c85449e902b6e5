"""What a running MCP server lists, compared with the scope rules meant to protect it: the
`check --lists` command. The same comparison the middleware makes on the first lists that pass
through it (listing.py), asked for on purpose, with a real token, before deploying."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from .config import ScopeRules
from .listing import LIST_METHODS, Listings
from .policy import ScopePolicy

__all__ = ["ListingFailedError", "check_lists", "listing_client"]


class ListingFailedError(RuntimeError):
    """The server could not be listed: unreachable, refused, or not an MCP server."""


_PAGES = 100  # cursors followed at most, per list


async def check_lists(
    url: str, token: str, rules: ScopeRules, *, strict: bool
) -> tuple[dict[str, list[str]], list[str]]:
    """Every name the server at `url` lists to the bearer of `token` (per list method), and what
    is wrong with `rules` against them: a rule that names nothing listed, and with `strict`
    every tool that nothing covers. Needs the MCP SDK (the `mcp` extra)."""
    listings = Listings(ScopePolicy(rules), rules.required, "all", strict=strict)
    names: dict[str, list[str]] = {}
    with _warnings() as problems:
        async with listing_client(url, token) as client:
            await _list_all(client, listings, rules, names)
    return names, problems


@asynccontextmanager
async def listing_client(url: str, token: str) -> AsyncIterator[Any]:
    """An MCP SDK client of the server at `url`, sending `token`. Any failure is raised as
    `ListingFailedError` saying why in one line: the server's status and challenge (RFC 6750 §3,
    never the token) where the SDK only says "Server returned an error response", and the first
    cause inside the SDK's task groups."""
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared.exceptions import MCPError

    refusals: list[str] = []

    async def note_refusal(response: httpx2.Response) -> None:
        if response.status_code >= 400:
            challenge = response.headers.get("www-authenticate")
            refusals.append(f"the server answered {response.status_code}" + (f": {challenge}" if challenge else ""))

    headers = {"Authorization": f"Bearer {token}"}
    try:
        async with (
            httpx2.AsyncClient(headers=headers, timeout=30, event_hooks={"response": [note_refusal]}) as http,
            Client(streamable_http_client(url, http_client=http)) as client,
        ):
            yield client
    except (OSError, httpx2.HTTPError, MCPError, ExceptionGroup) as exc:
        raise ListingFailedError((refusals[-1] if refusals else _first_cause(exc))[:400]) from None


def _first_cause(exc: BaseException) -> str:
    """The first cause inside the SDK's task groups, not "unhandled errors in a TaskGroup"."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return f"{type(exc).__name__}: {exc}"


async def _list_all(client: Any, listings: Listings, rules: ScopeRules, names: dict[str, list[str]]) -> None:
    """Every page of every list, each compared with the rules (list_filter "all": unchanged)."""
    calls = {
        "tools/list": client.list_tools,
        "prompts/list": client.list_prompts,
        "resources/list": client.list_resources,
        "resources/templates/list": client.list_resource_templates,
    }
    for method, call in calls.items():
        member, _, name = LIST_METHODS[method]
        names[method] = []
        cursor: str | None = None
        for _ in range(_PAGES):
            page: dict[str, Any] = (await call(cursor=cursor)).model_dump(by_alias=True, mode="json")
            names[method] += [entry[name] for entry in page.get(member) or [] if name in entry]
            listings.rewrite(method, page, rules.required)
            cursor = page.get("nextCursor")
            if cursor is None:
                break


@contextmanager
def _warnings() -> Iterator[list[str]]:
    """The lines the comparison logs, collected instead of printed."""
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    handler = Collect(logging.WARNING)
    ours = logging.getLogger("mcp_auth_middleware")
    ours.addHandler(handler)
    try:
        yield lines
    finally:
        ours.removeHandler(handler)
