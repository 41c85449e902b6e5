"""Per-call decisions by a policy engine, after the token and the scopes: OpenID AuthZEN 1.0
(`AuthZEN`) or embedded Cedar (`Cedar`), behind one interface (`DecisionEngine`); docs/policy.md."""

from .authzen import AuthZEN, coaz_mcp
from .cedar import Cedar
from .contract import DECIDED_METHODS, Decision, DecisionEngine, DecisionRequest, EngineError

__all__ = [
    "DECIDED_METHODS",
    "AuthZEN",
    "Cedar",
    "Decision",
    "DecisionEngine",
    "DecisionRequest",
    "EngineError",
    "coaz_mcp",
]
