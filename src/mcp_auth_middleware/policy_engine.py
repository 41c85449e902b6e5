"""The request path's use of a policy engine (engines/; its contract in engines/contract.py,
re-exported here) that decides per call, after the token and the scopes: given who calls
(`AuthInfo`), what (the JSON-RPC method, the tool, prompt or resource, its arguments) and from
where (the client's address, its `Origin`, the time), allow or deny with a reason for the log.
An engine that cannot answer in time, or answers garbage, is a 503: never an allow (fail closed).

| engine | how it decides | module |
|---|---|---|
| `AuthZEN` | asks a decision point over OpenID AuthZEN Authorization API 1.0 (Cerbos, ...) | engines/authzen.py |
| `Cedar` | evaluates Cedar policies in process (cedarpy) | engines/cedar.py |
| your own | any object with `decide` and `decide_all` (`DecisionEngine`) | |
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .auth_info import AuthInfo
from .config import AuthConfig
from .engines.contract import DECIDED_METHODS, Decision, DecisionEngine, DecisionRequest, EngineError
from .errors import AuthorizationServerUnavailableError, InsufficientScopeError
from .mcp_headers import NAME_BEARING_METHODS

if TYPE_CHECKING:
    from starlette.types import Scope

__all__ = [
    "DECIDED_METHODS",
    "Decision",
    "DecisionEngine",
    "DecisionRequest",
    "EngineError",
    "EngineStep",
    "ListJudge",
    "decide_messages",
]


async def decide_messages(
    engine: DecisionEngine,
    messages: Sequence[Any],
    caller: AuthInfo,
    *,
    methods: frozenset[str],
    within: float,
    client_address: str | None,
    origin: str | None,
) -> None:
    """Every message of `methods` decided (a batch in one `decide_all`): InsufficientScopeError
    (403) for a denial, AuthorizationServerUnavailableError (503) when the engine cannot say."""
    requests = [
        DecisionRequest(caller, method, _name(message), _arguments(message), client_address, origin)
        for message in messages
        if isinstance(message, Mapping) and (method := message.get("method")) in methods
    ]
    if not requests:
        return
    try:
        async with asyncio.timeout(within):
            decisions = [await engine.decide(requests[0])] if len(requests) == 1 else await engine.decide_all(requests)
    except TimeoutError:
        raise AuthorizationServerUnavailableError(
            "The policy engine did not answer in time", detail=f"no decision within {within}s"
        ) from None
    except EngineError as exc:
        raise AuthorizationServerUnavailableError("The policy engine could not decide", detail=str(exc)) from None
    if len(decisions) != len(requests):
        raise AuthorizationServerUnavailableError(
            "The policy engine could not decide", detail="it answered a different number of decisions"
        )
    for request, decision in zip(requests, decisions, strict=True):
        if not decision.allowed:
            raise InsufficientScopeError(
                frozenset(),
                "The policy does not allow this call",
                detail=f"policy engine denied {request.method} {request.name}: {decision.reason or 'no reason given'}",
            )


class ListJudge:
    """The engine's verdict on listed entries (`list_filter`), all in one `decide_all`: each
    entry is decided as a call without arguments (they are unknown), so a policy on arguments
    refuses it there; an engine that cannot say refuses them all (fail closed)."""

    def __init__(self, engine: DecisionEngine, within: float) -> None:
        self.engine, self.within = engine, within

    @classmethod
    def for_config(cls, config: AuthConfig) -> ListJudge | None:
        engine = config.decision_engine
        return None if engine is None else cls(engine, config.decision_timeout)

    async def __call__(self, entries: Sequence[tuple[str, str]], caller: AuthInfo) -> frozenset[tuple[str, str]]:
        requests = [DecisionRequest(caller, method, name, None) for method, name in entries]
        try:
            async with asyncio.timeout(self.within):
                decisions = await self.engine.decide_all(requests)
        except (TimeoutError, EngineError):
            return frozenset(entries)
        if len(decisions) != len(requests):
            return frozenset(entries)
        return frozenset(entry for entry, decision in zip(entries, decisions, strict=True) if not decision.allowed)


class EngineStep:
    """The request path's step: the messages of a request decided by the configured engine."""

    def __init__(self, engine: DecisionEngine, config: AuthConfig, client_address: Callable[[Scope], str]) -> None:
        self.engine, self.client_address = engine, client_address
        self.methods, self.within = config.decided_methods, config.decision_timeout

    @classmethod
    def for_config(cls, config: AuthConfig, client_address: Callable[[Scope], str]) -> EngineStep | None:
        engine = config.decision_engine
        return None if engine is None else cls(engine, config, client_address)

    async def __call__(self, messages: Sequence[Any], caller: AuthInfo, scope: Scope) -> None:
        origin = next((value.decode("latin-1") for name, value in scope["headers"] if name == b"origin"), None)
        await decide_messages(
            self.engine,
            messages,
            caller,
            methods=self.methods,
            within=self.within,
            client_address=self.client_address(scope),
            origin=origin,
        )


def _name(message: Mapping[str, Any]) -> str | None:
    params = message.get("params")
    key = NAME_BEARING_METHODS.get(str(message.get("method")))
    value = params.get(key) if key and isinstance(params, Mapping) else None
    return value if isinstance(value, str) else None


def _arguments(message: Mapping[str, Any]) -> Mapping[str, Any] | None:
    params = message.get("params")
    arguments = params.get("arguments") if isinstance(params, Mapping) else None
    return arguments if isinstance(arguments, Mapping) else None
