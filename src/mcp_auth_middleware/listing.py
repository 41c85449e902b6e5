"""Lists that match the rules that decide calls: `tools/list`, `prompts/list`, `resources/list`
and `resources/templates/list`, rewritten on their way out of the app.

The same rules that decide `tools/call`, `prompts/get` and `resources/read` (global scopes,
per tool, prompt, resource pattern, method, scope hierarchy and prefixes) decide each entry:

- `"annotate"` (the default): every entry stays listed; one whose call needs more than the
  global scopes names in its `_meta` (`SCOPES_META_KEY`) every scope the call needs (the set
  its 403 challenge would name), so a client can ask for them up front, and one it calls
  without them still gets the 403 step-up challenge (MCP authorization, Scope Challenge
  Handling). The list is the same for every caller.
- `"hide"`: an entry the caller's scopes do not cover is left out (MCP 2026-07-28: lists may
  vary with the request's authorization). The client never sees it, so it never calls it and
  never steps up for it; a result with a cache hint that may differ between callers gets
  `cacheScope: "private"` (SEP-2549).
- `"all"`: lists pass untouched.

Both JSON responses and server-sent events are rewritten: a JSON body is read whole (bounded)
and its `Content-Length` recomputed; in an event stream only the one event that carries a
list result is held and rewritten, every other event passes at once. A body that is
compressed, too large or not the JSON expected passes unchanged, with a warning once. Lists
are a convenience, never the defence: every call is decided again on its own.

The first complete list of each kind is also compared with the rules: a rule that names a
tool, prompt or resource the server does not list protects nothing (a typo, most likely) and
is said once at WARNING, with the closest listed name; with `strict_rules`, so is every listed
tool that no rule and no global scope covers.
"""

from __future__ import annotations

import difflib
import fnmatch
import json
import logging
import re
from collections.abc import Mapping
from typing import Any, Literal

from starlette.types import Message, Send

from .config import AuthConfig, ListMode
from .errors import InvalidRequestError
from .json_text import dump_json, load_json
from .policy import ScopePolicy
from .policy_engine import ListJudge

__all__ = ["LIST_METHODS", "POLICY_META_KEY", "SCOPES_META_KEY", "Listings"]

logger = logging.getLogger("mcp_auth_middleware")

#: The `_meta` key that names the scopes an entry's call needs (reverse-DNS, as MCP asks of
#: `_meta` prefixes: the project's package index name).
SCOPES_META_KEY = "org.pypi.mcp-oauth-middleware/requiredScopes"
#: The `_meta` key that marks an entry a policy engine refuses (asked without arguments).
POLICY_META_KEY = "org.pypi.mcp-oauth-middleware/policy"
_NONE: frozenset[tuple[str, str]] = frozenset()
#: list method -> (result member, the method that calls an entry, the entry's name member)
LIST_METHODS: Mapping[str, tuple[str, str, str]] = {
    "tools/list": ("tools", "tools/call", "name"),
    "prompts/list": ("prompts", "prompts/get", "name"),
    "resources/list": ("resources", "resources/read", "uri"),
    "resources/templates/list": ("resourceTemplates", "resources/read", "uriTemplate"),
}
#: The most of a JSON list response held in memory to rewrite it.
MAX_LIST_BODY = 8 * 1024 * 1024
_TEMPLATE_EXPRESSION = re.compile(r"\{[^}]*\}")
#: An event ends at an empty line; a line ends in CRLF, LF or CR, mixed as they come (HTML's
#: event stream format), so `\n\r\n` ends one too.
_EVENT_END = re.compile(rb"(?:\r\n|\r(?!\n)|\n)(?:\r\n|\r(?!\n)|\n)")


class Listings:
    """The list rewriting of one middleware (see the module docstring)."""

    def __init__(
        self, policy: ScopePolicy, required: frozenset[str], mode: ListMode, *, strict: bool, judge: Any = None
    ) -> None:
        self.policy, self.required, self.mode, self.strict = policy, required, mode, strict
        #: A policy engine's verdict on entries (policy_engine.ListJudge), when there is one.
        self.judge = judge
        self._warned: set[str] = set()
        self._needed: dict[tuple[str, str], frozenset[str]] = {}
        self._seen: dict[str, set[str]] = {}  # names listed so far, per list method (pages)
        self._checked: set[str] = set()

    def requests(self, messages: list[Any]) -> dict[Any, str]:
        """The ids of the list requests among `messages` whose answers are rewritten or still
        compared with the rules (id -> method); empty for others. InvalidRequestError when an
        answer could not be told from another's: a list request whose id is not a string or an
        integer (a server may read `1.0` as `1`), or a batch in which two requests share an id."""
        found: dict[Any, str] = {}
        ids: list[Any] = []
        for message in messages:
            if not isinstance(message, Mapping):
                continue
            method = message.get("method")
            if "id" in message:
                ids.append(message["id"])
            if method not in LIST_METHODS or (self.mode == "all" and method in self._checked):
                continue  # "all", once compared with the rules: the answer passes untouched
            if "id" in message:
                request_id = message["id"]
                if not isinstance(request_id, str | int) or isinstance(request_id, bool):
                    raise InvalidRequestError(f"The id of a {method} request must be a string or an integer")
                found[request_id] = str(method)
        if found and len(ids) != len({_id_key(i) for i in ids}):
            raise InvalidRequestError("Two requests in the batch share an id: their answers cannot be told apart")
        return found

    @classmethod
    def for_config(cls, config: AuthConfig, policy: ScopePolicy) -> Listings:
        rules = config.scopes
        return cls(policy, rules.required, rules.lists, strict=rules.strict, judge=ListJudge.for_config(config))

    def wrap(self, send: Send, requests: dict[Any, str] | None, granted: frozenset[str], caller: Any = None) -> Send:
        """The `send` that rewrites the responses to `requests` for a caller with `granted`;
        with None, every list result in the answer, known by its shape: a `GET` stream, which
        may replay the answers of earlier requests (resumed with `Last-Event-ID`)."""
        return _Rewriting(send, self, requests, granted, caller)

    # -- one result --------------------------------------------------------------------------

    def needed(self, method: str, entry: Mapping[str, Any]) -> frozenset[str]:
        """What calling this entry needs, by the rules that decide the call itself."""
        member = LIST_METHODS[method][2]
        name = entry.get(member)
        if not isinstance(name, str):
            return self.required
        known = self._needed.get((method, name))
        if known is None:
            known = self._decide(method, name)
            if len(self._needed) >= 4096:  # bounded: names come from the app, but may be many
                self._needed.clear()
            self._needed[method, name] = known
        return known

    def _decide(self, method: str, name: str) -> frozenset[str]:
        # A list entry is decided as a call with empty arguments (a `scope_rule` sees it so):
        # the answer depends on the name alone, and is kept (above).
        _, call, member = LIST_METHODS[method]
        if member == "uriTemplate":
            # A template stands for many URIs: decided as one of them (each {expression} a
            # plain segment), which a pattern such as file:///secret/* matches as it would.
            name = _TEMPLATE_EXPRESSION.sub("x", name)
        params = {"uri": name} if call == "resources/read" else {"name": name, "arguments": {}}
        return self.required | self.policy.required_for([{"method": call, "params": params}])

    def rewrite(
        self, method: str, result: dict[str, Any], granted: frozenset[str], denied: frozenset[tuple[str, str]] = _NONE
    ) -> bool:
        """Rewrite one list result in place for a caller; whether anything changed."""
        member = LIST_METHODS[method][0]
        entries = result.get(member)
        if not isinstance(entries, list):
            return False
        self._notice(method, entries, result.get("nextCursor") is None)
        if self.mode == "all":
            return False
        kept: list[Any] = []
        changed = varies = False
        for entry in entries:
            if not isinstance(entry, dict):
                kept.append(entry)
                continue
            needed = self.needed(method, entry)
            extra = needed - self.required
            refused = (LIST_METHODS[method][1], entry.get(LIST_METHODS[method][2])) in denied
            if self.mode == "hide":
                varies = varies or bool(extra) or self.judge is not None
                if refused or self.policy.missing(granted, needed):
                    changed = True
                    continue
            if refused:  # annotate: the policy would refuse this entry, called without arguments
                meta = entry.get("_meta")
                entry["_meta"] = {**(meta if isinstance(meta, dict) else {}), POLICY_META_KEY: "refused"}
                changed = True
            elif extra and self.mode == "annotate":
                meta = entry.get("_meta")
                entry["_meta"] = {**(meta if isinstance(meta, dict) else {}), SCOPES_META_KEY: sorted(needed)}
                changed = True
            kept.append(entry)
        result[member] = kept
        if varies and ("cacheScope" in result or "ttlMs" in result) and result.get("cacheScope") != "private":
            # SEP-2549: a list that depends on who asks is never served to someone else.
            result["cacheScope"] = "private"
            changed = True
        return changed

    def rewrite_message(
        self,
        message: Any,
        requests: dict[Any, str] | None,
        granted: frozenset[str],
        denied: frozenset[tuple[str, str]] = _NONE,
    ) -> bool:
        """A JSON-RPC response (or a batch of them): rewrite the results of `requests` (with
        None: every result shaped as a list result)."""
        changed = False
        for result, method in self.list_results(message, requests):
            changed = self.rewrite(method, result, granted, denied) or changed
        return changed

    def list_results(self, message: Any, requests: dict[Any, str] | None) -> list[tuple[dict[str, Any], str]]:
        """The list results of a response (or a batch: one level, as JSON-RPC has it), each with
        its list method: the request's (by id), or with None, known by its shape."""
        found = []
        for item in message if isinstance(message, list) else [message]:
            if not isinstance(item, dict) or not isinstance(result := item.get("result"), dict):
                continue
            request_id = item.get("id")
            if not isinstance(request_id, str | int) or isinstance(request_id, bool):
                continue
            method = _list_method_of(result) if requests is None else requests.get(request_id)
            if method is not None:
                found.append((result, method))
        return found

    def entries(self, message: Any, requests: dict[Any, str] | None) -> list[tuple[str, str]]:
        """(the method that calls it, its name) of every entry listed: what a judge decides."""
        found = []
        for result, method in self.list_results(message, requests):
            _, call, member = LIST_METHODS[method]
            items = result.get(LIST_METHODS[method][0])
            for entry in items if isinstance(items, list) else []:
                if isinstance(entry, dict) and isinstance(name := entry.get(member), str):
                    found.append((call, name))
        return found

    # -- rules that name nothing -------------------------------------------------------------

    def _notice(self, method: str, entries: list[Any], complete: bool) -> None:
        """Collect the names listed; at the end of the first complete list, check the rules."""
        if method in self._checked:
            return
        member = LIST_METHODS[method][2]
        names = self._seen.setdefault(method, set())
        names.update(e[member] for e in entries if isinstance(e, Mapping) and isinstance(e.get(member), str))
        if complete:
            self._checked.add(method)
            self._check_rules(method, names)

    def _check_rules(self, method: str, names: set[str]) -> None:
        rules = self.policy.rules
        if method == "tools/list":
            self._unlisted("tool_scopes", rules.tools, names, "tool")
            if self.strict and not self.required and "tools/call" not in rules.methods and rules.rule is None:
                for name in sorted(names - set(rules.tools)):
                    self.warn_once(
                        f"tool {name!r} is listed but no rule covers it (no tool_scopes entry, no required_scopes): "
                        "any valid token may call it (strict_rules)"
                    )
        elif method == "prompts/list":
            self._unlisted("prompt_scopes", rules.prompts, names, "prompt")
        elif {"resources/list", "resources/templates/list"} <= self._checked:
            # Patterns against both lists: a resource may be listed only through a template.
            listed = self._seen["resources/list"] | {
                _TEMPLATE_EXPRESSION.sub("x", template) for template in self._seen["resources/templates/list"]
            }
            for pattern in rules.resources:
                if not any(fnmatch.fnmatchcase(uri, pattern) for uri in listed):
                    self.warn_once(
                        f"resource_scopes names {pattern!r}, which matches no resource or template the server "
                        "lists: it protects nothing"
                    )

    def _unlisted(self, option: str, rules: Mapping[str, Any], names: set[str], kind: str) -> None:
        for name in sorted(set(rules) - names):
            close = difflib.get_close_matches(name, names, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            self.warn_once(f"{option} names {kind} {name!r}, which the server does not list: it protects nothing{hint}")

    def warn_once(self, line: str) -> None:
        if line not in self._warned and len(self._warned) < 256:
            self._warned.add(line)
            logger.warning("%s", line)


class _Rewriting:
    """The `send` of one request whose response holds list results (see `Listings.wrap`)."""

    def __init__(
        self, send: Send, listings: Listings, requests: dict[Any, str] | None, granted: frozenset[str], caller: Any
    ) -> None:
        self.send, self.listings, self.requests, self.granted = send, listings, requests, granted
        self.caller = caller
        self.mode: Literal["json", "events", "whole-events", "through"] = "through"
        self.start: Message | None = None
        self.chunks: list[bytes] = []
        self.size = 0
        self.pending = bytearray()  # the start of an event whose end has not come yet

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.mode = self._mode(message)
            if self.mode in ("json", "whole-events"):
                self.start = message  # held until the body is known: its length changes
                return
        elif message["type"] == "http.response.body":
            if self.mode in ("json", "whole-events"):
                await self._whole(message)
                return
            if self.mode == "events":
                await self._events(message)
                return
        await self.send(message)

    def _mode(self, start: Message) -> Literal["json", "events", "whole-events", "through"]:
        if start.get("status") != 200:
            return "through"
        headers = {name.lower(): value for name, value in start.get("headers", [])}
        media_type = headers.get(b"content-type", b"").partition(b";")[0].strip().lower()
        encoding = headers.get(b"content-encoding", b"identity").strip().lower()
        if media_type not in (b"application/json", b"text/event-stream"):
            return "through"
        if self.requests is None and media_type != b"text/event-stream":
            return "through"  # a GET answered with JSON is no MCP stream: left alone
        if encoding != b"identity":
            self.listings.warn_once(
                f"a list response is {encoding.decode('latin-1')}-encoded: it passes unfiltered (list_filter "
                "needs the uncompressed body; compress after the middleware, e.g. in the proxy)"
            )
            return "through"
        if media_type == b"text/event-stream":
            # A stream of a known length is finite: read whole, so that its length can be
            # said again; an open stream is rewritten event by event, as it flows.
            return "whole-events" if b"content-length" in headers else "events"
        return "json"

    async def _whole(self, message: Message) -> None:
        chunk = message.get("body", b"")
        self.chunks.append(chunk)
        self.size += len(chunk)
        if self.size > MAX_LIST_BODY:
            self.listings.warn_once(f"a list response is larger than {MAX_LIST_BODY} bytes: it passes unfiltered")
            await self._release(b"".join(self.chunks), more=message.get("more_body", False))
            self.mode = "through"
            return
        if message.get("more_body", False):
            return
        body = b"".join(self.chunks)
        if self.mode == "whole-events":
            body = await self._rewritten(self._complete_events(body, final=True))
        else:
            document = load_json(body)
            if document is None:
                self.listings.warn_once(
                    "a list response is not valid JSON: it passes unfiltered (or it is, but holds a number out "
                    "of range or is nested too deep to be written back as it was)"
                )
            elif await self._rewrite(document):
                body = dump_json(document)
        await self._release(body, more=False)

    async def _release(self, body: bytes, *, more: bool) -> None:
        assert self.start is not None
        start = self.start
        if not more:  # the whole body is known: its length, as it is now
            headers = [(n, v) for n, v in start.get("headers", []) if n.lower() != b"content-length"]
            start = {**start, "headers": [*headers, (b"content-length", str(len(body)).encode())]}
        await self.send(start)
        await self.send({"type": "http.response.body", "body": body, "more_body": more})

    async def _events(self, message: Message) -> None:
        more = message.get("more_body", False)
        body = await self._rewritten(self._complete_events(message.get("body", b""), final=not more))
        if body or not more:  # nothing yet (an event still held): nothing to send
            await self.send({"type": "http.response.body", "body": body, "more_body": more})

    def _complete_events(self, data: bytes, *, final: bool) -> list[tuple[bytes, bytes]]:
        """The events that `data` completes, each with the line ends after it; an incomplete last
        one waits in `pending` for the rest, unless the stream ends here. Only the new bytes (and
        the three before them, where an event's end may have begun) are searched: linear."""
        pending = self.pending
        start = max(0, len(pending) - 3)
        pending += data
        out: list[tuple[bytes, bytes]] = []
        position = 0
        for end in _EVENT_END.finditer(pending, start):
            if not final and end.end() == len(pending) and pending.endswith(b"\r"):
                break  # a CR last: the LF of a CRLF may be in the next chunk
            out.append((bytes(pending[position : end.start()]), end.group()))
            position = end.end()
        del pending[:position]
        if final and pending:
            out.append((bytes(pending), b""))
            pending.clear()
        return out

    async def _rewritten(self, events: list[tuple[bytes, bytes]]) -> bytes:
        return b"".join([await self._event(event) + ending for event, ending in events])

    async def _event(self, event: bytes) -> bytes:
        """One event, rewritten if its data is a list result for this request; else as it was."""
        lines = event.splitlines()
        data = [line[5:].removeprefix(b" ") for line in lines if line.startswith(b"data:")]
        if not data:
            return event
        document = load_json(b"\n".join(data))
        if document is None or not await self._rewrite(document):
            return event
        kept = [line for line in lines if not line.startswith(b"data:")]
        return b"\n".join([*kept, b"data: " + dump_json(document)])

    async def _rewrite(self, document: Any) -> bool:
        """Rewrite `document`'s list results, with the judge's verdict on their entries if any."""
        judge, denied = self.listings.judge, _NONE
        if judge is not None and self.caller is not None:
            entries = self.listings.entries(document, self.requests)
            denied = await judge(entries, self.caller) if entries else _NONE
        return self.listings.rewrite_message(document, self.requests, self.granted, denied)


def _id_key(request_id: Any) -> tuple[str, Any]:
    """What an id is to a server that reads numbers as numbers (`1`, `1.0` and `true` alike)."""
    if isinstance(request_id, int | float):
        return "number", float(request_id)
    if isinstance(request_id, str):
        return "string", request_id
    return "other", json.dumps(request_id, sort_keys=True)


def _list_method_of(result: Mapping[str, Any]) -> str | None:
    """The list method whose result this is, by its one list member (`tools`, `prompts`, ...)."""
    found = [method for method, (member, _, _) in LIST_METHODS.items() if isinstance(result.get(member), list)]
    return found[0] if len(found) == 1 else None
