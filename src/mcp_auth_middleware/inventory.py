"""What a running MCP server lists, compared with the scope rules meant to protect it: the
`check --lists` command. The same comparison the middleware makes on the first lists that pass
through it (listing.py), asked for on purpose, with a real token, before deploying."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .config import ScopeRules
from .listing import LIST_METHODS, Listings
from .policy import ScopePolicy

__all__ = ["ListingFailedError", "check_lists"]


class ListingFailedError(RuntimeError):
    """The server could not be listed: unreachable, refused, or not an MCP server."""


_PAGES = 100  # cursors followed at most, per list


async def check_lists(
    url: str, token: str, rules: ScopeRules, *, strict: bool
) -> tuple[dict[str, list[str]], list[str]]:
    """Every name the server at `url` lists to the bearer of `token` (per list method), and what
    is wrong with `rules` against them: a rule that names nothing listed, and with `strict`
    every tool that nothing covers. Needs the MCP SDK (the `mcp` extra)."""
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared.exceptions import MCPError

    listings = Listings(ScopePolicy(rules), rules.required, "all", strict=strict)
    names: dict[str, list[str]] = {}
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30)
    with _warnings() as problems:
        try:
            await _list_all(Client(streamable_http_client(url, http_client=http)), listings, rules, names)
        except (OSError, httpx2.HTTPError, MCPError, ExceptionGroup) as exc:
            raise ListingFailedError(f"{type(exc).__name__}: {exc}"[:300]) from None
    return names, problems


async def _list_all(client: Any, listings: Listings, rules: ScopeRules, names: dict[str, list[str]]) -> None:
    """Every page of every list, each compared with the rules (list_filter "all": unchanged)."""
    async with client:
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
