"""The `MCP_AUTH_*` variables: which option each sets and how its text is read
(`AuthConfig.from_env`), and every variable something in the package reads (`KNOWN_VARIABLES`:
an unknown one is a misspelling, values.check_variable_names)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from ..values import word_list

__all__ = ["KNOWN_VARIABLES", "VARIABLES", "decision_engine"]


def _words(value: str) -> list[str]:
    return word_list(value)


def _off_or_limit(value: str) -> str | None:
    return None if value.strip() in ("", "off") else value.strip()


def _rules(variable: str) -> Callable[[str], dict[str, list[str]]]:
    """`delete_notes=notes:delete; admin_tool=admin audit` (entries split by `;`, scopes as any
    list), or the same as a JSON object: `{"delete_notes": ["notes:delete"]}`."""

    def read(value: str) -> dict[str, list[str]]:
        text = value.strip()
        if text.startswith("{"):
            try:
                rules = json.loads(text)
            except ValueError:
                raise ValueError(f"{variable} is not a JSON object") from None
            if not isinstance(rules, dict):
                raise ValueError(f"{variable} is not a JSON object")
            return {str(name): word_list(scopes) for name, scopes in rules.items()}
        rules = {}
        for entry in filter(None, (part.strip() for part in text.split(";"))):
            name, equals, scopes = entry.partition("=")
            if not equals or not name.strip():
                raise ValueError(f"{variable}: {entry!r} is not NAME=SCOPES (entries are separated by ';')")
            rules[name.strip()] = word_list(scopes)
        return rules

    return read


def _callers(value: str) -> dict[str, str]:
    """`delete_notes=users; nightly_sync=machines`: who may call each tool."""
    rules = _rules("MCP_AUTH_TOOL_CALLERS")(value)
    return {name: " ".join(words) for name, words in rules.items()}


def _seconds(variable: str) -> Callable[[str], float]:
    def read(value: str) -> float:
        try:
            return float(value)
        except ValueError:
            raise ValueError(f"{variable} is {value!r}: a number of seconds") from None

    return read


def _empty_is_none(value: str) -> list[str] | None:
    return word_list(value) or None  # an empty MCP_AUTH_CORS_ORIGINS turns CORS off


#: Each `MCP_AUTH_*` variable: the keyword it sets, and how its text is read.
VARIABLES: dict[str, tuple[str, Callable[[str], Any]]] = {
    "MCP_AUTH_RESOURCE": ("resource", str),
    "MCP_AUTH_ISSUER": ("issuer", str),
    "MCP_AUTH_ISSUERS": ("issuers", _words),
    "MCP_AUTH_AUTHORIZATION_SERVERS": ("authorization_servers", _words),
    "MCP_AUTH_JWKS_URI": ("jwks_uri", str),
    "MCP_AUTH_INTROSPECTION_ENDPOINT": ("introspection_endpoint", str),
    "MCP_AUTH_CLIENT_ID": ("client_id", str),
    "MCP_AUTH_CLIENT_SECRET": ("client_secret", str),
    "MCP_AUTH_TOKEN_VALIDATION": ("token_validation", str),
    "MCP_AUTH_REQUIRED_SCOPES": ("required_scopes", _words),
    "MCP_AUTH_TOOL_SCOPES": ("tool_scopes", _rules("MCP_AUTH_TOOL_SCOPES")),
    "MCP_AUTH_METHOD_SCOPES": ("method_scopes", _rules("MCP_AUTH_METHOD_SCOPES")),
    "MCP_AUTH_RESOURCE_SCOPES": ("resource_scopes", _rules("MCP_AUTH_RESOURCE_SCOPES")),
    "MCP_AUTH_PROMPT_SCOPES": ("prompt_scopes", _rules("MCP_AUTH_PROMPT_SCOPES")),
    "MCP_AUTH_TOOL_CALLERS": ("tool_callers", _callers),
    "MCP_AUTH_DECISION_ENGINE": ("decision_engine", str),  # decision_engine() below makes it an engine
    "MCP_AUTH_DECIDED_METHODS": ("decided_methods", _words),
    "MCP_AUTH_DECISION_TIMEOUT": ("decision_timeout", _seconds("MCP_AUTH_DECISION_TIMEOUT")),
    "MCP_AUTH_LIST_FILTER": ("list_filter", str),
    "MCP_AUTH_STRICT_RULES": ("strict_rules", bool),
    "MCP_AUTH_SCOPES_SUPPORTED": ("scopes_supported", _words),
    "MCP_AUTH_PUBLIC_PATHS": ("public_paths", _words),
    "MCP_AUTH_RESOURCE_NAME": ("resource_name", str),
    "MCP_AUTH_ALLOWED_ORIGINS": ("allowed_origins", _words),
    "MCP_AUTH_CORS_ORIGINS": ("cors_origins", _empty_is_none),
    "MCP_AUTH_FAILURE_LIMIT": ("failure_limit", _off_or_limit),
    "MCP_AUTH_RATE_LIMIT_STORAGE": ("rate_limit_storage", str),
    "MCP_AUTH_TRUSTED_PROXIES": ("trusted_proxies", _words),
    "MCP_AUTH_FORWARDED_HEADER": ("forwarded_header", str),
    "MCP_AUTH_LOG_ALLOWED": ("log_allowed", bool),
    "MCP_AUTH_ALLOW_HTTP": ("allow_http", bool),
    "MCP_AUTH_STRICT_STARTUP": ("strict_startup", bool),
    "MCP_AUTH_DPOP": ("dpop", bool),
    "MCP_AUTH_DPOP_REQUIRED": ("dpop_required", bool),
    "MCP_AUTH_DPOP_NONCES": ("dpop_nonces", bool),
    "MCP_AUTH_DPOP_NONCE_SECRET": ("dpop_nonce_secret", str),
}


#: Variables that other parts read (the gateway service's, gateway/options.py; the commands'):
#: known, so not taken for a misspelling by `from_env`.
_READ_ELSEWHERE = frozenset(
    {
        "MCP_AUTH_GATEWAY",
        "MCP_AUTH_TRUSTED_GATEWAYS",
        "MCP_AUTH_WITHOUT_MCP_HEADERS",
        "MCP_AUTH_IDENTITY_HEADERS",
        "MCP_AUTH_ASSERTION_KEY_FILE",
        "MCP_AUTH_ASSERTION_LIFETIME",
        "MCP_AUTH_ASSERTION_ISSUER",
        "MCP_AUTH_CHECK_PATH",
        "MCP_AUTH_LOG_LEVEL",
        "MCP_AUTH_DECISION_ENGINE_TOKEN",
        "MCP_AUTH_CEDAR_SCHEMA",
    }
)
#: Every `MCP_AUTH_*` variable something in the package reads.
KNOWN_VARIABLES = frozenset(VARIABLES) | _READ_ELSEWHERE


def decision_engine(spec: str, environ: Mapping[str, str], *, allow_http: bool = False) -> Any:
    """The engine `MCP_AUTH_DECISION_ENGINE` names (docs/policy.md): `authzen:URL` (a decision
    point; `MCP_AUTH_DECISION_ENGINE_TOKEN`, a bearer token it requires) or `cedar:FILE` (a
    policy file; `MCP_AUTH_CEDAR_SCHEMA`, the schema that validates it)."""
    kind, colon, where = spec.strip().partition(":")
    kind = kind.strip().lower()
    if not colon or not where.strip() or kind not in ("authzen", "cedar"):
        raise ValueError(
            f"MCP_AUTH_DECISION_ENGINE is {spec!r}: write authzen:URL (a decision point) or cedar:FILE (policies)"
        )
    from ..engines import AuthZEN, Cedar

    if kind == "cedar":
        return Cedar(where.strip(), schema=environ.get("MCP_AUTH_CEDAR_SCHEMA") or None)
    return AuthZEN(where.strip(), auth=environ.get("MCP_AUTH_DECISION_ENGINE_TOKEN") or None, allow_http=allow_http)
