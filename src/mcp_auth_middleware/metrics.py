"""Counters and timings through the OpenTelemetry API: a no-op unless a provider is configured.

Hot-path counts are plain integers, read by observable instruments only when metrics are
collected: a request pays an integer increment, never an OpenTelemetry call. Only the remote
call (introspection) records a histogram directly.

Instruments (meter "mcp_auth_middleware"):
  mcp_auth.decisions              counter   outcome=allow|deny|challenge|limited, reason
  mcp_auth.token_cache            counter   validator=jwt|introspection, result=hit|miss
  mcp_auth.jwks.fetches           counter
  mcp_auth.introspection.requests counter   result=ok|error
  mcp_auth.introspection.duration histogram seconds
  mcp_auth.rate_limit.blocks      counter
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .validators.base import CachingValidator, Validator
from .validators.introspection import IntrospectionValidator
from .validators.jwks import JWKSKeys
from .validators.jwt import JWTValidator

if TYPE_CHECKING:
    from .rate_limit import FailureLimiter

__all__ = ["AuthMetrics"]


class AuthMetrics:
    """Decision counts of one middleware, and the bridge to OpenTelemetry."""

    #: Distinct (outcome, reason) pairs kept; a custom validator's descriptions could vary.
    max_reasons = 256
    ALLOW = ("allow", "valid token")

    def __init__(self) -> None:
        self.allowed = 0  # the common case, a plain integer
        self._others: Counter[tuple[str, str]] = Counter()  # (outcome, reason) -> count

    @property
    def decisions(self) -> Counter[tuple[str, str]]:
        """Every decision so far: (outcome, reason) -> count."""
        decisions = self._others.copy()
        if self.allowed:
            decisions[self.ALLOW] = self.allowed
        return decisions

    def record(self, outcome: str, reason: str) -> None:
        """A decision other than a plain allow (those are counted in `allowed`)."""
        key = (outcome, reason)
        if key not in self._others and len(self._others) >= self.max_reasons:
            key = (outcome, "other")
        self._others[key] += 1

    def bind(self, validator: Validator, guard: FailureLimiter | None, meter_provider: Any = None) -> bool:
        """Create the instruments; False when `opentelemetry-api` is not installed."""
        try:
            from opentelemetry import metrics
            from opentelemetry.metrics import CallbackOptions, Observation
        except ImportError:
            return False
        meter = (meter_provider or metrics.get_meter_provider()).get_meter("mcp_auth_middleware")
        validators = [validator, *validator.parts]
        counted = [v for v in validators if isinstance(v, CachingValidator)]
        remote = [v for v in validators if isinstance(v, IntrospectionValidator)]
        key_sources = [v.keys for v in validators if isinstance(v, JWTValidator) and isinstance(v.keys, JWKSKeys)]

        def decisions(options: CallbackOptions) -> Iterable[Observation]:
            for (outcome, reason), count in self.decisions.items():
                yield Observation(count, {"outcome": outcome, "reason": reason})

        def cache(options: CallbackOptions) -> Iterable[Observation]:
            for v in counted:
                yield Observation(v.cache_hits, {"validator": v.kind, "result": "hit"})
                yield Observation(v.cache_misses, {"validator": v.kind, "result": "miss"})

        def jwks(options: CallbackOptions) -> Iterable[Observation]:
            for keys in key_sources:
                yield Observation(keys.fetches)

        def introspection(options: CallbackOptions) -> Iterable[Observation]:
            for v in remote:
                yield Observation(v.calls - v.errors, {"result": "ok"})
                yield Observation(v.errors, {"result": "error"})

        def blocks(options: CallbackOptions) -> Iterable[Observation]:
            if guard is not None:
                yield Observation(guard.blocked)

        meter.create_observable_counter("mcp_auth.decisions", [decisions], description="Authentication decisions")
        meter.create_observable_counter("mcp_auth.token_cache", [cache], description="Verified-token cache lookups")
        meter.create_observable_counter("mcp_auth.jwks.fetches", [jwks], description="JWKS documents fetched")
        meter.create_observable_counter(
            "mcp_auth.introspection.requests", [introspection], description="Introspection requests sent"
        )
        meter.create_observable_counter(
            "mcp_auth.rate_limit.blocks", [blocks], description="Requests refused for too many failed authentications"
        )
        duration = meter.create_histogram(
            "mcp_auth.introspection.duration",
            unit="s",
            description="Time to ask the authorization server about a token",
        )
        for v in remote:
            v.on_duration = duration.record
        return True
