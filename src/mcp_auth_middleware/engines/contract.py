"""The contract of a policy engine: the call to decide (`DecisionRequest`), the answer
(`Decision`), the engine (`DecisionEngine`: `decide`, `decide_all`) and its failure
(`EngineError`, a 503, never an allow). Below the configuration and the request path, which
use it; the engines beside it implement it."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from ..auth_info import AuthInfo

__all__ = ["DECIDED_METHODS", "Decision", "DecisionEngine", "DecisionRequest", "EngineError"]

#: The methods an engine decides by default: the ones that name a tool, prompt or resource
#: (mcp_headers.NAME_BEARING_METHODS, which sits above the configuration: tested equal).
DECIDED_METHODS = ("tools/call", "prompts/get", "resources/read")


@dataclass(frozen=True)
class DecisionRequest:
    """One call to decide. `arguments` is None when they are not known (a gateway, which sees
    no body; an entry of a list): a policy that needs them must say what it decides then."""

    caller: AuthInfo
    method: str
    name: str | None
    arguments: Mapping[str, Any] | None = None
    client_address: str | None = None
    origin: str | None = None
    time: float = field(default_factory=time.time)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    #: Why (the engine's words): for the log line, never for the client.
    reason: str = ""


@runtime_checkable
class DecisionEngine(Protocol):
    async def decide(self, request: DecisionRequest) -> Decision: ...

    async def decide_all(self, requests: Sequence[DecisionRequest]) -> list[Decision]: ...


class EngineError(Exception):
    """The engine could not decide (down, slow, an answer it cannot read): a 503, never an allow."""
