"""`AuthInfo`, the verified identity the middleware attaches to every request, and `get_auth`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from starlette.authentication import AuthCredentials, BaseUser

from .integrations.mcp import starlette_user, user_context_var
from .lazy import computed_once

__all__ = ["AuthInfo", "current_auth", "get_auth", "is_sender_constrained"]


@dataclass(frozen=True, init=False)
class AuthInfo:
    """Who is calling, on whose behalf, with which scopes.

    The raw token is not kept (MCP authorization, Token Handling: token passthrough is forbidden) unless the
    middleware is built with `expose_token=True`.
    """

    sub: str | None
    client_id: str | None
    scopes: frozenset[str]
    issuer: str | None = None
    audience: tuple[str, ...] = ()
    expires_at: int | None = None
    claims: Mapping[str, Any] = field(default_factory=dict, repr=False, hash=False)
    token: str | None = field(default=None, repr=False, compare=False)

    def __init__(
        self,
        sub: str | None,
        client_id: str | None,
        scopes: frozenset[str],
        issuer: str | None = None,
        audience: tuple[str, ...] = (),
        expires_at: int | None = None,
        claims: Mapping[str, Any] | None = None,
        token: str | None = None,
    ) -> None:
        # The generated frozen __init__ sets each field through object.__setattr__: about
        # 3 µs, a tenth of the budget for a new token. One update of the instance dict is
        # the same assignment without the detour; the instance stays frozen afterwards.
        self.__dict__.update(
            sub=sub,
            client_id=client_id,
            scopes=scopes,
            issuer=issuer,
            audience=audience,
            expires_at=expires_at,
            claims={} if claims is None else claims,
            token=token,
        )

    # Built once per verified token (the validators cache AuthInfo), so a warm request pays
    # nothing for them.
    @computed_once
    def user(self) -> BaseUser:
        """Starlette's `request.user`; an MCP SDK `AuthenticatedUser` when `mcp` is installed."""
        return starlette_user(self)

    @computed_once
    def credentials(self) -> AuthCredentials:
        """Starlette's `request.auth`: the granted scopes."""
        return AuthCredentials(sorted(self.scopes))

    @computed_once
    def sender_constrained(self) -> bool:
        """Whether the token is bound to a key or certificate (a `cnf` claim, or `token_type:
        DPoP` from introspection): good only with a proof of possession (RFC 9449 §6)."""
        return is_sender_constrained(self.claims)

    @computed_once
    def dpop_jkt(self) -> str | None:
        """The thumbprint (RFC 7638) of the DPoP key the token is bound to (`cnf.jkt`)."""
        cnf = self.claims.get("cnf")
        jkt = cnf.get("jkt") if isinstance(cnf, Mapping) else None
        return jkt if isinstance(jkt, str) else None

    def has_scopes(self, *scopes: str) -> bool:
        return self.scopes.issuperset(scopes)


def current_auth() -> AuthInfo | None:
    """The caller of the request being handled (set by the middleware for its duration)."""
    info = getattr(user_context_var.get(), "auth_info", None)
    return info if isinstance(info, AuthInfo) else None


def get_auth(source: Any = None) -> AuthInfo | None:
    """The caller's `AuthInfo`, or None when the request was not authenticated.

    `source` may be a Starlette `Request`/`HTTPConnection`, an ASGI scope, an MCP SDK or
    FastMCP tool `Context`, or omitted (then the current request's context is used).
    """
    if source is None:
        return current_auth()
    scope = _scope_of(source)
    if scope is None:
        return current_auth()
    state = scope.get("state")
    auth = state.get("auth") if isinstance(state, Mapping) else None
    return auth if isinstance(auth, AuthInfo) else None


def _scope_of(source: Any) -> Mapping[str, Any] | None:
    if isinstance(source, Mapping):
        return source
    scope = getattr(source, "scope", None)
    if isinstance(scope, Mapping):
        return scope
    # MCP SDK and FastMCP tool contexts carry the Starlette request on their request context.
    try:
        request = source.request_context.request
    except (AttributeError, LookupError, ValueError, RuntimeError):
        return None
    scope = getattr(request, "scope", None)
    return scope if isinstance(scope, Mapping) else None


def is_sender_constrained(claims: Mapping[str, Any]) -> bool:
    """A `cnf` claim binds the token to a key (DPoP `jkt`, RFC 9449 §6) or certificate
    (`x5t#S256`, RFC 8705 §3): presented as a plain bearer token, it must be refused
    (RFC 9449 §7.2). An introspection answer may say so with `token_type: DPoP` alone
    (RFC 9449 §6.2)."""
    cnf = claims.get("cnf")
    if cnf is not None and not (isinstance(cnf, Mapping) and not cnf):
        return True
    token_type = claims.get("token_type")
    return isinstance(token_type, str) and token_type.lower() == "dpop"
