"""`Cedar`: decisions by Cedar policies evaluated in process (cedarpy, the Cedar project's Python
binding), from a policy file (and an optional schema), reloaded when the file changes.

Each call is the Cedar request `principal` `Mcp::User::"<sub>"` (`Mcp::Machine::"<client>"` for
a client acting for itself), `action` `Mcp::Action::"<method>"` (`"tools/call"`), `resource`
`Mcp::Tool::"<name>"` (`Mcp::Prompt`, `Mcp::Resource`), and `context`: `arguments` (absent when
unknown: at a gateway), `client_id`, `scopes`, `time` (epoch seconds), and `client_address` and
`origin` when known. The principal entity carries `sub` (a policy cannot read an entity's id),
`client_id`, `scopes`, `issuer` and the token's `roles`/`groups`. A policy file that does not
parse is refused when the engine is built
(and when a changed file is read), naming the line of the statement that fails.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .contract import Decision, DecisionRequest, EngineError

__all__ = ["Cedar"]

_TYPES = {"tools/call": "Tool", "prompts/get": "Prompt", "resources/read": "Resource"}
_STATEMENT_END = re.compile(r";[ \t]*(?://[^\n]*)?$", re.M)


class Cedar:
    """`Cedar("policies.cedar", schema="mcp.cedarschema.json")`."""

    def __init__(self, policies: str | os.PathLike[str], *, schema: str | os.PathLike[str] | None = None,
                 namespace: str = "Mcp", reload_every: float = 1.0) -> None:  # fmt: skip
        self.path, self.schema = Path(policies), None
        try:
            import cedarpy
        except ImportError:
            raise ImportError(
                "Cedar needs cedarpy: pip install 'mcp-oauth-middleware[cedar]'", name="cedarpy"
            ) from None
        self._cedarpy = cedarpy
        self.schema = _read(Path(schema), "schema") if schema is not None else None
        self.namespace = namespace
        self.reload_every = reload_every
        self._checked_at = 0.0
        self._mtime = -1.0
        _read(self.path, "policy file")  # missing at startup: say so, not a traceback
        self._load()

    def __repr__(self) -> str:
        return f"Cedar({str(self.path)!r}{', with its schema' if self.schema is not None else ''})"

    async def decide(self, request: DecisionRequest) -> Decision:
        return self._decide(request)

    async def decide_all(self, requests: Sequence[DecisionRequest]) -> list[Decision]:
        return [self._decide(request) for request in requests]

    def _decide(self, request: DecisionRequest) -> Decision:
        self._reload_if_changed()
        caller, ns = request.caller, self.namespace
        kind = "Machine" if caller.is_machine else "User"
        principal_id = (caller.client_id if caller.is_machine else caller.sub) or ""
        attributes: dict[str, Any] = {
            "sub": caller.sub or "",
            "client_id": caller.client_id or "",
            "scopes": sorted(caller.scopes),
            "issuer": caller.issuer or "",
        }
        for claim in ("roles", "groups"):
            value = caller.claims.get(claim)
            attributes[claim] = [str(v) for v in value] if isinstance(value, list) else []
        context: dict[str, Any] = {
            "client_id": caller.client_id or "",
            "scopes": sorted(caller.scopes),
            "time": int(request.time),
        }
        if request.arguments is not None:  # the values Cedar compares: strings, integers, booleans
            context["arguments"] = {k: v for k, v in request.arguments.items() if isinstance(v, str | int | bool)}
        context |= {k: v for k, v in (("client_address", request.client_address), ("origin", request.origin)) if v}
        cedar_request = {
            "principal": f'{ns}::{kind}::"{_escaped(principal_id)}"',
            "action": f'{ns}::Action::"{_escaped(request.method)}"',
            "resource": f'{ns}::{_TYPES.get(request.method, "Other")}::"{_escaped(request.name or "")}"',
            "context": context,
        }
        entity = {
            "uid": {"__entity": {"type": f"{ns}::{kind}", "id": principal_id}},
            "attrs": attributes,
            "parents": [],
        }
        try:
            result = self._cedarpy.is_authorized(cedar_request, self._policies, [entity], schema=self.schema)
        except Exception as exc:  # cedarpy raises ValueError/RuntimeError for requests it cannot read
            raise EngineError(f"Cedar could not evaluate the request: {exc}") from None
        errors = [str(error) for error in result.diagnostics.errors]
        if errors:
            raise EngineError(f"Cedar could not evaluate the policies: {'; '.join(errors)[:300]}")
        reasons = ", ".join(str(r) for r in result.diagnostics.reasons) or "no permit matched"
        return Decision(bool(result.allowed), f"Cedar: {reasons}")

    def _reload_if_changed(self) -> None:
        now = time.monotonic()
        if now - self._checked_at < self.reload_every:
            return
        self._checked_at = now
        try:
            changed = self.path.stat().st_mtime != self._mtime
        except OSError as exc:
            raise EngineError(f"the Cedar policy file {self.path} cannot be read: {exc}") from None
        if changed:
            try:
                self._load()
            except ValueError as exc:
                raise EngineError(str(exc)) from None  # the last good policies are not used either

    def _load(self) -> None:
        mtime = self.path.stat().st_mtime
        text = self.path.read_text()
        self._policies = _parsed(self._cedarpy, text, self.path)
        if self.schema is not None:
            validation = self._cedarpy.validate_policies(text, self.schema)
            if not validation.validation_passed:
                problems = "; ".join(str(e) for e in validation.errors)[:300]
                raise ValueError(f"{self.path}: the policies do not match the schema: {problems}")
        self._mtime = mtime


def _read(path: Path, what: str) -> str:
    try:
        return path.read_text()
    except OSError as exc:
        raise ValueError(f"the Cedar {what} {path} cannot be read: {exc.strerror or exc}") from None


def _parsed(cedarpy: Any, text: str, path: Path) -> Any:
    """The policy set, or a ValueError naming the line of the first statement that fails."""
    try:
        return cedarpy.PolicySet.from_str(text)
    except ValueError as whole:
        ends = [end.end() for end in _STATEMENT_END.finditer(text)] + [len(text)]
        start = 0
        for end in ends:
            statement = text[start:end]
            if statement.strip():
                try:
                    cedarpy.PolicySet.from_str(statement)
                except ValueError as exc:
                    raise ValueError(f"{path}:{_first_line(text, start)}: the policy does not parse: {exc}") from None
            start = end
        raise ValueError(f"{path}: the policies do not parse: {whole}") from None


def _first_line(text: str, start: int) -> int:
    """The line number of the first line at or after `start` that is neither blank nor a comment."""
    line = text.count("\n", 0, start) + 1
    for content in text[start:].splitlines():
        if content.strip() and not content.strip().startswith("//"):
            return line
        line += 1
    return line


def _escaped(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')
