"""Scope rules: per JSON-RPC method, per tool, per resource URI, per prompt; scope hierarchies
(MCP authorization, Scope Challenge Handling)."""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Callable, Iterable, Mapping
from functools import lru_cache
from typing import Any

from starlette.types import Message, Send

from .challenge import Challenger, RawResponse, send_response
from .config import ScopeRules
from .errors import InsufficientScopeError, InvalidRequestError
from .values import check_scope_token

__all__ = [
    "ROUTE_DENIAL_KEY",
    "STEP_UP_KEY",
    "RouteDenial",
    "ScopePolicy",
    "StepUp",
    "describe_messages",
    "parse_messages",
    "route_checks",
]

#: Where the middleware leaves a request's `StepUp` in the ASGI scope.
STEP_UP_KEY = "mcp_auth.step_up"
#: Where it leaves the request's `RouteDenial`, when per-route checks are in use.
ROUTE_DENIAL_KEY = "mcp_auth.route_denial"


def _scopes(values: Iterable[str]) -> frozenset[str]:
    if isinstance(values, str):
        values = values.split()
    return frozenset(check_scope_token(v) for v in values)


class ScopePolicy:
    """Which scopes an MCP request needs under `ScopeRules`, and whether granted scopes cover
    them (the hierarchy: `implied`, transitive, and with `prefix_implies` a granted `files`
    covers any `files:...` scope)."""

    def __init__(self, rules: ScopeRules) -> None:
        self.rules = rules
        self.method_scopes = rules.methods
        self.tool_scopes = rules.tools
        self.resource_scopes = list(rules.resources.items())
        self.prompt_scopes = rules.prompts
        self.callers = rules.callers
        self.rule = rules.rule
        self.implied = rules.implied
        self.prefix_implies = rules.prefix_implies
        self.inspects_messages = rules.inspects_messages
        self.expand = lru_cache(maxsize=1024)(self._expand)

    def required_for(self, messages: Iterable[Any]) -> frozenset[str]:
        """The union over all messages (a JSON-RPC batch needs everything its parts need)."""
        needed: set[str] = set()
        for message in messages:
            if not isinstance(message, Mapping):
                continue
            method = message.get("method")
            if not isinstance(method, str):
                continue  # a response or malformed message: the MCP server answers it
            params = message.get("params")
            params = params if isinstance(params, Mapping) else None
            needed |= self.method_scopes.get(method, frozenset())
            name = params.get("name") if params else None
            if method == "tools/call" and isinstance(name, str):
                needed |= self.tool_scopes.get(name, frozenset())
            elif method == "prompts/get" and isinstance(name, str):
                needed |= self.prompt_scopes.get(name, frozenset())
            elif method == "resources/read" and params and isinstance(uri := params.get("uri"), str):
                for pattern, scopes in self.resource_scopes:
                    if fnmatch.fnmatchcase(uri, pattern):
                        needed |= scopes
            if self.rule is not None:
                needed |= _scopes(self.rule(method, params) or ())
        return frozenset(needed)

    def check_caller(self, messages: Iterable[Any], is_machine: bool) -> None:
        """`tool_callers`: a 403 naming who may call a tool of `messages` this kind of caller may
        not (no scope would change that, so the challenge names none)."""
        tool = self.refused_caller(messages, is_machine)
        if tool is not None:
            who = "a person's client" if is_machine else "a machine client"
            raise InsufficientScopeError(
                frozenset(), f"Only {who} may call this tool", detail=f"tool {tool} is for {self.callers[tool]}"
            )

    def refused_caller(self, messages: Iterable[Any], is_machine: bool) -> str | None:
        """The tool of `messages` that this kind of caller may not call (`tool_callers`), if any."""
        wrong = "users" if is_machine else "machines"
        for message in messages:
            if not isinstance(message, Mapping) or message.get("method") != "tools/call":
                continue
            params = message.get("params")
            name = params.get("name") if isinstance(params, Mapping) else None
            if isinstance(name, str) and self.callers.get(name) == wrong:
                return name
        return None

    def missing(self, granted: frozenset[str], needed: frozenset[str]) -> frozenset[str]:
        if needed <= granted:
            return frozenset()
        covered = self.expand(granted)
        left = needed - covered
        if self.prefix_implies and left:
            left = frozenset(s for s in left if not any(s.startswith(g + ":") for g in covered))
        return left

    def _expand(self, granted: frozenset[str]) -> frozenset[str]:
        """Granted scopes plus everything they imply, transitively."""
        result, todo = set(granted), list(granted)
        while todo:
            for implied in self.implied.get(todo.pop(), ()):
                if implied not in result:
                    result.add(implied)
                    todo.append(implied)
        return frozenset(result)


class StepUp:
    """What a route's own scope check (integrations.fastapi) needs from the middleware that let
    the request in: whether the granted scopes cover what the route needs plus the middleware's
    required scopes (hierarchy included), and if not, the same 403 challenge the middleware
    would send (MCP authorization, Scope Challenge Handling)."""

    __slots__ = ("challenger", "policy", "required")

    def __init__(self, policy: ScopePolicy, required: frozenset[str], challenger: Challenger) -> None:
        self.policy, self.required, self.challenger = policy, required, challenger

    def refusal(self, granted: frozenset[str], scopes: Iterable[str]) -> RawResponse | None:
        needed = frozenset(scopes) | self.required
        if not self.policy.missing(granted, needed):
            return None
        return self.challenger.for_error(InsufficientScopeError(needed))


class _RouteChecks:
    """Whether any per-route check (integrations.fastapi `require_auth`) exists in this
    process: only then does the middleware watch responses for a route's denial."""

    used = False


route_checks = _RouteChecks()


class RouteDenial:
    """A per-route refusal answered as the middleware answers its own: one log line, and the
    same body and challenge. The route's framework answers the exception its own way (FastAPI:
    `{"detail": ...}`); on the way out, that answer is replaced by the middleware's."""

    __slots__ = ("log", "response", "send")

    def __init__(self, send: Send, log: Callable[[str], None]) -> None:
        self.send, self.log = send, log
        self.response: RawResponse | None = None

    def refuse(self, response: RawResponse, reason: str) -> None:
        self.response = response
        self.log(reason)

    async def __call__(self, message: Message) -> None:
        """The `send` the app gets."""
        if self.response is None:
            await self.send(message)
        elif message["type"] == "http.response.start":
            await send_response(self.send, self.response)
        # else: the framework's own body for the refusal, dropped


def describe_messages(messages: Iterable[Any] | None) -> str:
    """`tools/call delete_notes`, `resources/read file:///x`: what a request asks, for a log line."""
    parts = []
    for message in messages or ():
        method = message.get("method") if isinstance(message, Mapping) else None
        if not isinstance(method, str):
            continue
        params = message.get("params")
        target = params.get("name", params.get("uri")) if isinstance(params, Mapping) else None
        parts.append(f"{method} {target}" if isinstance(target, str) else method)
    text = ", ".join(parts)
    return repr(text)[1:-1][:200] if text else "this request"


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        # Parsers disagree on which duplicate wins; a policy must not guess (fail closed).
        raise InvalidRequestError("The JSON-RPC message repeats a member")
    return result


def parse_messages(body: bytes) -> list[Any] | None:
    """The JSON-RPC message(s) in a body, or None if it is not JSON at all (the app answers that)."""
    try:
        document = json.loads(body)
    except RecursionError as exc:
        raise InvalidRequestError("The JSON-RPC message is nested too deeply") from exc
    except ValueError:  # includes UnicodeDecodeError
        return None
    messages = document if isinstance(document, list) else [document]
    if _may_repeat_members(body, messages):
        # Rare: a deciding member name occurs more often than the parsed messages account for
        # (e.g. a "name" argument). Only then pay for the duplicate-checking parse.
        json.loads(body, object_pairs_hook=_no_duplicate_keys)
    return messages


def _may_repeat_members(body: bytes, messages: list[Any]) -> bool:
    # A member name may also be spelled with escapes ("\\u006eame"): then always check.
    if b"\\u" in body:
        return True
    methods = params = names = uris = 0
    for message in messages:
        if isinstance(message, dict):
            methods += "method" in message
            params += "params" in message
            inner = message.get("params")
            if isinstance(inner, dict):
                names += "name" in inner
                uris += "uri" in inner
    return (
        body.count(b'"method"') > methods
        or body.count(b'"params"') > params
        or body.count(b'"name"') > names
        or body.count(b'"uri"') > uris
    )
