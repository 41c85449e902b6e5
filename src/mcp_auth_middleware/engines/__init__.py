"""Per-call decisions by a policy engine, after the token and the scopes: OpenID AuthZEN 1.0
(`AuthZEN`) or embedded Cedar (`Cedar`), behind one interface (`DecisionEngine`); docs/policy.md."""

from ..policy_engine import DECIDED_METHODS, Decision, DecisionEngine, DecisionRequest, EngineError
from .authzen import AuthZEN, coaz_mcp
from .cedar import Cedar

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
