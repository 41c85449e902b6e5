"""Turning token claims (JWT or introspection) into AuthInfo, and comparing audiences."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any, TypeGuard

from ..auth_info import AuthInfo, is_sender_constrained
from ..urls import canonical_uri

__all__ = [
    "DEFAULT_CLIENT_ID_CLAIMS",
    "DEFAULT_SCOPE_CLAIMS",
    "audience_matches",
    "canonical_audiences",
    "is_numeric_date",
    "is_sender_constrained",
    "to_auth_info",
]

#: `scope` (RFC 9068, RFC 7662) and `scp` (Okta, Entra); add e.g. "permissions" (Auth0)
#: or "roles" (Entra app roles) with `scope_claims=`.
DEFAULT_SCOPE_CLAIMS: tuple[str, ...] = ("scope", "scp")
#: RFC 9068 `client_id`, then OIDC `azp`, then Okta `cid` and Entra v1 `appid`.
DEFAULT_CLIENT_ID_CLAIMS: tuple[str, ...] = ("client_id", "azp", "cid", "appid")


def canonical_audiences(audience: str | Iterable[str]) -> frozenset[str]:
    """The accepted audiences, canonical, from one value or several (configuration)."""
    values = [audience] if isinstance(audience, str) else list(audience)
    if not values or not all(isinstance(v, str) and v for v in values):
        raise ValueError("audience must be a non-empty string or list of strings")
    return frozenset(canonical_uri(v) for v in values)


def audience_matches(aud: object, accepted: frozenset[str]) -> bool:
    """`aud` (string or list of strings) names one of `accepted` (already canonical).

    Exact or canonical equality only, never a prefix match (RFC 8707 §2).
    """
    # `accepted` is canonical, so an exact hit needs no canonical_uri (it is idempotent).
    if type(aud) is str:
        return aud in accepted or canonical_uri(aud) in accepted
    if type(aud) is list:
        return any(type(v) is str and (v in accepted or canonical_uri(v) in accepted) for v in aud)
    return False


def is_numeric_date(value: object) -> TypeGuard[int | float]:
    """A JSON number that is a usable NumericDate: not a bool, not NaN or infinite."""
    return type(value) is int or (type(value) is float and math.isfinite(value))


def scopes_from(claims: Mapping[str, Any], names: Iterable[str]) -> frozenset[str]:
    """Space-delimited strings or lists of strings, merged over all configured claim names."""
    scopes: frozenset[str] = frozenset()
    for name in names:
        value = claims.get(name)
        if type(value) is str:
            found = value.split()
        elif type(value) is list:
            found = [v for v in value if type(v) is str and v and " " not in v]
        else:
            continue
        scopes = scopes.union(found) if scopes else frozenset(found)
    return scopes


def to_auth_info(
    claims: Mapping[str, Any],
    *,
    scope_claims: Iterable[str],
    client_id_claims: Iterable[str],
    token: str | None = None,
) -> AuthInfo:
    # Plain loops and `type(...) is` checks: this runs once for every new token.
    aud = claims.get("aud")
    if type(aud) is str:
        audience: tuple[str, ...] = (aud,)
    elif type(aud) is list:
        audience = tuple(a for a in aud if type(a) is str)
    else:
        audience = ()
    client_id = None
    for name in client_id_claims:
        value = claims.get(name)
        if type(value) is str and value:
            client_id = value
            break
    sub, iss, exp = claims.get("sub"), claims.get("iss"), claims.get("exp")
    return AuthInfo(
        sub if type(sub) is str else None,
        client_id,
        scopes_from(claims, scope_claims),
        iss if type(iss) is str else None,
        audience,
        int(exp) if is_numeric_date(exp) else None,
        MappingProxyType(claims),  # read-only: one AuthInfo serves many requests
        token,
    )
