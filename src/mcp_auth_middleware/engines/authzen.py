"""`AuthZEN`: decisions from a policy decision point over the OpenID AuthZEN Authorization API
1.0: an access evaluation (§6) per call, batch evaluations (§7) for many at once, the endpoints
from its discovery document (`/.well-known/authzen-configuration`).

The request is shaped as the AuthZEN working group's draft MCP profile maps a call (`coaz_mcp`):
the subject is the token's subject (its client, scopes, issuer and role-like claims as
properties), the action the JSON-RPC method, the resource the tool (prompt, resource URI) with its
arguments. Pass `shape=` to send another. Decisions are kept for `cache_ttl` seconds per request
body (the caller, the action, the resource and its arguments), and concurrent requests for one
share one call (async-lru). A decision point that is down, slow or answers something else than a
decision is an `EngineError` (503), never an allow.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import httpx2
from async_lru import alru_cache

from ..fetch import check_fetch_url, describe_failure
from .contract import Decision, DecisionRequest, EngineError

__all__ = ["AuthZEN", "coaz_mcp"]

#: Claims passed on as the subject's properties when the token has them (roles, groups).
ROLE_CLAIMS = ("roles", "groups", "role", "scp")
_RESOURCE_TYPES = {"tools/call": "tool", "prompts/get": "prompt", "resources/read": "resource"}


def coaz_mcp(request: DecisionRequest) -> dict[str, Any]:
    """The AuthZEN request for one MCP call (the draft MCP profile's mapping)."""
    caller = request.caller
    properties: dict[str, Any] = {
        "client_id": caller.client_id,
        "scopes": sorted(caller.scopes),
        "issuer": caller.issuer,
        "machine": caller.is_machine,
    }
    properties |= {claim: caller.claims[claim] for claim in ROLE_CLAIMS if claim in caller.claims}
    resource: dict[str, Any] = {"type": _RESOURCE_TYPES.get(request.method, "mcp"), "id": request.name or ""}
    if request.arguments is not None:
        resource["properties"] = {"arguments": dict(request.arguments)}
    context = {k: v for k, v in (("client_address", request.client_address), ("origin", request.origin)) if v}
    return {
        "subject": {
            "type": "machine" if caller.is_machine else "user",
            "id": caller.sub or "",
            "properties": properties,
        },
        "action": {"name": request.method},
        "resource": resource,
        "context": context,
    }


class AuthZEN:
    """`AuthZEN("http://127.0.0.1:3592")`: the decision point's base URL (its discovery document
    names the endpoints), or the endpoints themselves. `auth=` authenticates to it: a bearer
    token, or any `httpx2.Auth` (client credentials: `client_auth.ClientCredentialsBearer`, which
    gets a token, keeps it and gets another after a 401)."""

    def __init__(
        self,
        pdp: str | None = None,
        *,
        evaluation_endpoint: str | None = None,
        evaluations_endpoint: str | None = None,
        auth: str | httpx2.Auth | None = None,
        shape: Callable[[DecisionRequest], dict[str, Any]] = coaz_mcp,
        cache_ttl: float = 5.0,
        cache_size: int = 10_000,
        timeout: float = 2.0,
        allow_http: bool = False,
        http_client: httpx2.AsyncClient | None = None,
    ) -> None:
        if pdp is None and evaluation_endpoint is None:
            raise ValueError("AuthZEN needs the decision point's URL (pdp=) or its evaluation_endpoint=")
        for url in (pdp, evaluation_endpoint, evaluations_endpoint):
            if url is not None:
                check_fetch_url(url, allow_http=allow_http)
        self.pdp = pdp.rstrip("/") if pdp else None
        self.evaluation_endpoint, self.evaluations_endpoint = evaluation_endpoint, evaluations_endpoint
        self.shape, self.timeout = shape, timeout
        self._auth: httpx2.Auth | None = _Bearer(auth) if isinstance(auth, str) else auth
        self._client = http_client or httpx2.AsyncClient(timeout=timeout, follow_redirects=False)
        #: Decisions per request body, for `cache_ttl`; concurrent misses share one call.
        self._evaluate = alru_cache(maxsize=cache_size, ttl=cache_ttl)(self._evaluate_uncached)
        self.calls = 0  # requests sent to the decision point (observable in tests and benchmarks)

    def __repr__(self) -> str:
        return f"AuthZEN({self.pdp or self.evaluation_endpoint!r})"

    async def decide(self, request: DecisionRequest) -> Decision:
        body = json.dumps(self.shape(request), sort_keys=True, separators=(",", ":"), default=str)
        return await self._evaluate(body)

    async def decide_all(self, requests: Sequence[DecisionRequest]) -> list[Decision]:
        """AuthZEN 1.0 §7: one request for all of them."""
        if not requests:
            return []
        endpoint = self.evaluations_endpoint or await self._endpoint("access_evaluations_endpoint")
        answer = await self._post(endpoint, {"evaluations": [self.shape(r) for r in requests]})
        evaluations = answer.get("evaluations")
        if not isinstance(evaluations, list) or len(evaluations) != len(requests):
            raise EngineError(f"{endpoint} answered no list of {len(requests)} evaluations")
        return [_decision(item, endpoint) for item in evaluations]

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _evaluate_uncached(self, body: str) -> Decision:
        endpoint = self.evaluation_endpoint or await self._endpoint("access_evaluation_endpoint")
        return _decision(await self._post(endpoint, json.loads(body)), endpoint)

    async def _endpoint(self, member: str) -> str:
        document = await self._discovery()
        url = document.get(member)
        if not isinstance(url, str):
            raise EngineError(f"{self.pdp}/.well-known/authzen-configuration names no {member}")
        return url

    async def _discovery(self) -> Mapping[str, Any]:
        if not hasattr(self, "_document"):
            self._document = await self._get_discovery()
        return self._document

    async def _get_discovery(self) -> Mapping[str, Any]:
        url = f"{self.pdp}/.well-known/authzen-configuration"
        try:
            answer = await self._client.get(url)
            document = answer.json()
        except (httpx2.HTTPError, ValueError) as exc:
            raise EngineError(f"no AuthZEN discovery document at {url}: {describe_failure(exc, url)}") from None
        if answer.status_code != 200 or not isinstance(document, dict):
            raise EngineError(f"no AuthZEN discovery document at {url} (HTTP {answer.status_code})")
        return document

    async def _post(self, endpoint: str, body: Mapping[str, Any]) -> Mapping[str, Any]:
        self.calls += 1
        headers = {"content-type": "application/json"}
        try:
            answer = await self._client.post(
                endpoint, content=json.dumps(body), headers=headers, auth=self._auth or httpx2.USE_CLIENT_DEFAULT
            )
            document = answer.json()
        except httpx2.HTTPError as exc:
            raise EngineError(f"{endpoint}: {describe_failure(exc, endpoint)}") from None
        except ValueError:
            raise EngineError(f"{endpoint} answered something that is not JSON") from None
        if answer.status_code != 200 or not isinstance(document, dict):
            raise EngineError(f"{endpoint} answered HTTP {answer.status_code}")
        return document


class _Bearer(httpx2.Auth):
    def __init__(self, token: str) -> None:
        self.header = f"Bearer {token}"

    def auth_flow(self, request: httpx2.Request) -> Any:
        request.headers["authorization"] = self.header
        yield request


def _decision(answer: Any, endpoint: str) -> Decision:
    """AuthZEN 1.0 §6.2: `decision` is a boolean; anything else is no decision (never an allow)."""
    if not isinstance(answer, Mapping) or not isinstance(answer.get("decision"), bool):
        raise EngineError(f"{endpoint} answered without a boolean decision")
    context = answer.get("context")
    reason = ""
    if isinstance(context, Mapping):
        said = context.get("reason_admin") or context.get("reason") or context.get("id")
        reason = json.dumps(said)[:200] if said is not None else ""
    return Decision(answer["decision"], reason)
