"""What every broker endpoint answers with: refusals (RFC 6749 §5.2 JSON for clients, a page for
a person's browser), the request's parameters read strictly, and the scopes and resources a
request may have (the authorization and token endpoints ask the same)."""

from __future__ import annotations

import html
import logging
from collections.abc import Awaitable, Callable, Iterable
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from ..body import read_body
from ..challenge import safe_description
from ..errors import BodyTooLargeError
from .consent import PAGE_HEADERS
from .settings import BrokerSettings
from .storage import StorageUnavailableError
from .upstream import ProviderError

__all__ = ["Refusal", "ToClient", "answering", "page", "read_form", "resources_for", "scopes_for", "single"]

logger = logging.getLogger("mcp_auth_middleware.broker")

MAX_FORM = 16 * 1024


class Refusal(Exception):
    """A token, registration or revocation request refused (RFC 6749 §5.2)."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error, self.description, self.status = error, description, status


class ToClient(Exception):
    """An authorization request refused once its redirect URI is known good: told to the client."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error, self.description = error, description


def answering(
    answer: Callable[[Request], Awaitable[Response]], *, for_browser: bool = False
) -> Callable[[Request], Awaitable[Response]]:
    """The endpoint around `answer`: refusals as RFC 6749 §5.2 JSON (a page `for_browser`);
    storage or provider down: 503 with `Retry-After`; never a 500 with a trace."""

    async def endpoint(request: Request) -> Response:
        try:
            return await answer(request)
        except Refusal as refusal:
            headers = {"cache-control": "no-store"}
            if refusal.status == 401:
                headers["www-authenticate"] = 'Basic realm="token"'
            body = {"error": refusal.error, "error_description": refusal.description}
            return JSONResponse(body, status_code=refusal.status, headers=headers)
        except (StorageUnavailableError, ProviderError) as exc:
            logger.warning("broker unavailable: %s", getattr(exc, "detail", exc))
            if for_browser:
                return page(503, "Sign-in is unavailable", "Try again in a moment.", retry=True)
            body = {"error": "temporarily_unavailable", "error_description": "try again later"}
            return JSONResponse(body, status_code=503, headers={"retry-after": "5", "cache-control": "no-store"})

    return endpoint


def scopes_for(settings: BrokerSettings, asked: str | None, allowed: Iterable[str] | None = None) -> list[str]:
    """The scopes asked (the defaults when none), each among `allowed` (the supported ones)."""
    scopes = list(dict.fromkeys((asked or "").split())) or list(settings.default_scopes or ())
    limit = set(settings.scopes_supported if allowed is None else allowed)
    unknown = [s for s in scopes if s not in limit]
    if unknown:
        raise ToClient("invalid_scope", f"not available: {safe_description(' '.join(unknown))}")
    return scopes


def resources_for(settings: BrokerSettings, requested: list[str], granted: list[str] | None) -> list[str]:
    """RFC 8707 §2: only our configured resources, and at the token endpoint only what the
    grant covers; none asked: the grant's, or our default."""
    allowed = granted if granted is not None else list(settings.resources)
    for resource in requested:
        if resource not in allowed:
            raise ToClient("invalid_target", f"resource {safe_description(resource[:100])} is not served here")
    if requested:
        return list(dict.fromkeys(requested))
    return list(granted) if granted is not None else [settings.resources[0]]


def single(items: Iterable[tuple[str, str]], except_: tuple[str, ...] = ()) -> dict[str, str] | None:
    """Parameters, each once (RFC 6749 §3.1); None if one is repeated (`except_` may repeat)."""
    seen: dict[str, str] = {}
    for name, value in items:
        if name in seen and name not in except_:
            return None
        seen[name] = value
    return seen


async def read_form(request: Request) -> dict[str, str] | None:
    """An urlencoded form body, bounded, each parameter once; None otherwise."""
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type != "application/x-www-form-urlencoded":
        return None
    try:
        body, _ = await read_body(request.receive, MAX_FORM)
        items = parse_qsl(body.decode(), keep_blank_values=True, strict_parsing=False)
    except (BodyTooLargeError, UnicodeDecodeError, ValueError):
        return None
    return single(items)


def page(status: int, title: str, message: str, *, retry: bool = False, because: str | None = None) -> Response:
    """An error page a person reads: escaped, no script, not framable; `because`, for the
    operator's log (what was refused and why, never a token)."""
    if because is not None:
        logger.info("broker %d: %s", status, because)
    body = (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title></head>'
        f"<body><h1>{html.escape(title)}</h1><p>{html.escape(message)}</p></body></html>\n"
    )
    headers = dict(PAGE_HEADERS) | ({"retry-after": "5"} if retry else {})
    return HTMLResponse(body, status_code=status, headers=headers)
