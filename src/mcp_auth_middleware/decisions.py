"""What the middleware says about each decision: a count for the metrics, and one log line
that names the check, a token fingerprint and the client address (docs/troubleshooting.md).

Levels: a request without a token at DEBUG (the start of every OAuth flow); routine denials at
INFO; what looks like a configuration mismatch, an outage, a refused browser origin (once per
origin) and a request for another host (once per host) at WARNING, shown by plain uvicorn; a
misconfiguration at ERROR, once. A token is never logged, only the start of its SHA-256.
"""

from __future__ import annotations

import logging

from starlette.types import Scope

from .auth_info import AuthInfo
from .config import Resource
from .errors import AuthError, ConfigurationError, shown
from .metrics import AuthMetrics
from .rate_limit import ClientAddresses

__all__ = ["Decisions", "token_hash"]

logger = logging.getLogger("mcp_auth_middleware")

_OUTCOMES = {429: "limited", 503: "unavailable"}
_MAX_SEEN = 64  # distinct hosts, origins, misconfigurations said loudly; then quietly


def token_hash(key: bytes | None) -> str | None:
    """A short name for a token in logs: the start of its SHA-256, never the token itself."""
    return key.hex()[:12] if key else None


class Decisions:
    """The counts and log lines of one middleware."""

    def __init__(self, resource: Resource, client_address: ClientAddresses, metrics: AuthMetrics) -> None:
        self.resource = resource
        self.client_address = client_address
        self.metrics = metrics
        self._hosts_seen: set[str] = set()
        self._origins_seen: set[bytes] = set()
        self._misconfigurations: set[str | None] = set()

    def challenged(self, scope: Scope) -> None:
        self.metrics.record("challenge", "no bearer token")
        self.check_host(scope)  # the first request of every client lands here
        if logger.isEnabledFor(logging.DEBUG):
            self.log(logging.DEBUG, "challenge", "no bearer token", None, scope, status=401)

    def denied(self, error: AuthError, key: bytes | None, scope: Scope, address: str) -> None:
        self.metrics.record(_OUTCOMES.get(error.status, "deny"), error.description)
        level = logging.WARNING if error.mismatch or error.status == 503 else logging.INFO
        if isinstance(error, ConfigurationError):
            # One ERROR line says what is wrong; every request after it would say the same.
            level = logging.DEBUG if self.said_misconfigured(error.detail) else logging.ERROR
        if logger.isEnabledFor(level):
            reason = f"{error.description}: {error.detail}" if error.detail else error.description
            self.log(level, "deny", reason, key, scope, status=error.status, address=address)

    def said_misconfigured(self, detail: str | None) -> bool:
        """Whether this misconfiguration was said already; from now on it has been."""
        said = detail in self._misconfigurations
        if len(self._misconfigurations) < _MAX_SEEN:
            self._misconfigurations.add(detail)
        return said

    def route_denied(self, key: bytes, scope: Scope, reason: str) -> None:
        """A route's own 403 (integrations.fastapi `require_auth`), said as the middleware's."""
        self.metrics.record("deny", "insufficient scope")
        if logger.isEnabledFor(logging.INFO):
            description = f"The access token lacks a required scope: {reason}"
            self.log(logging.INFO, "deny", description, key, scope, status=403)

    def origin_refused(self, origin: bytes, scope: Scope, status: int) -> None:
        """Said once per origin at WARNING with the option that admits it: plain uvicorn shows
        no INFO, and a browser shows nothing of a refusal."""
        self.metrics.record("deny", "origin not allowed")
        level = logging.INFO
        if origin not in self._origins_seen and len(self._origins_seen) < _MAX_SEEN:
            self._origins_seen.add(origin)
            level = logging.WARNING
        if logger.isEnabledFor(level):
            reason = (
                f"Origin {shown(origin.decode('latin-1'))} is not allowed: browser pages from it get 403 "
                "forbidden_origin; to admit it, add it to allowed_origins (MCP_AUTH_ALLOWED_ORIGINS)"
            )
            self.log(level, "deny", reason, None, scope, status=status)

    def allowed(self, key: bytes, scope: Scope, info: AuthInfo) -> None:
        """Counted always, logged only with `log_allowed` (checking the level costs time)."""
        if logger.isEnabledFor(logging.DEBUG):
            self.log(logging.DEBUG, "allow", "valid token", key, scope, info=info)

    def log(
        self,
        level: int,
        outcome: str,
        reason: str,
        key: bytes | None,
        scope: Scope,
        *,
        status: int = 200,
        address: str | None = None,
        info: AuthInfo | None = None,
    ) -> None:
        """One line per decision: what, why, which token (a short hash, never the token: MCP
        authorization, Token Handling), from where."""
        fingerprint = token_hash(key)
        address = address or self.client_address(scope)
        logger.log(
            level,
            "auth %s %s %s %s: %s (token %s, client %s)",
            outcome,
            status,
            scope["method"],
            scope["path"],
            reason,
            fingerprint or "none",
            address,
            extra={
                "auth_outcome": outcome,
                "auth_reason": reason,
                "auth_status": status,
                "auth_token_hash": fingerprint,
                "auth_client_address": address,
                "auth_sub": info.sub if info else None,
                "auth_client_id": info.client_id if info else None,
            },
        )
        if status != 200:
            self.check_host(scope)

    def check_host(self, scope: Scope) -> None:
        """Say once per host when requests name another host than the resource: a client that
        connected to `localhost` for a `127.0.0.1` resource fails the RFC 9728 §3.3 check."""
        if len(self._hosts_seen) >= _MAX_SEEN:
            return
        raw = next((value for name, value in scope["headers"] if name == b"host"), b"")
        host = raw.decode("latin-1").lower()
        if not host or host == self.resource.host or host in self._hosts_seen:
            return
        self._hosts_seen.add(host)
        logger.warning(
            "requests arrive for host %r but the resource is %s: clients that connect to that host will "
            "refuse the metadata (its `resource` must be the URL they used); set `resource` to the public URL "
            "(ignore this if a proxy rewrites Host)",
            host,
            self.resource.url,
        )
