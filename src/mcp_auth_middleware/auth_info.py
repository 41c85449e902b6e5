"""`AuthInfo`, the verified identity the middleware attaches to every request: a plain value
(what frameworks build from it, their user types, lives with each integration); and
`TokenValidator`, the one-method contract of whatever produces it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from starlette.authentication import AuthCredentials

from .lazy import computed_once

__all__ = ["AuthInfo", "TokenValidator", "is_sender_constrained"]

T = TypeVar("T")


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
    #: What `derived` built from this AuthInfo, by builder.
    _derived: dict[Callable[[Any], Any], Any] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )

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
            _derived={},
        )

    def derived(self, build: Callable[[AuthInfo], T]) -> T:
        """`build(self)`, made once: one AuthInfo serves every request of a token (the
        validators cache it), so what an integration builds from it (Starlette's user, the MCP
        SDK's) costs a warm request one dict lookup."""
        try:
            return self._derived[build]  # type: ignore[no-any-return]
        except KeyError:
            value = self._derived[build] = build(self)
            return value

    # Built once per verified token (the validators cache AuthInfo), so a warm request pays
    # nothing for them.
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

    @computed_once
    def actors(self) -> tuple[str, ...]:
        """Who acts for `sub` (RFC 8693 §4.1, the `act` claim of an exchanged token): the
        current actor first, then those before it in the chain; empty when `sub` calls itself.
        Only the current actor decides anything (RFC 8693 §4.1: prior actors are informational)."""
        chain: list[str] = []
        act = self.claims.get("act")
        while isinstance(act, Mapping) and len(chain) < 16:
            actor = act.get("sub") or act.get("client_id")
            chain.append(actor if isinstance(actor, str) else "?")
            act = act.get("act")
        return tuple(chain)

    @property
    def is_machine(self) -> bool:
        """Whether the caller is a machine: a client acting for itself, with no person behind it
        (the client credentials grant, whose access tokens name the client as `sub`, RFC 9068
        §2.2), rather than a client acting for a signed-in user."""
        return self.sub is None or self.sub == self.client_id

    def has_scopes(self, *scopes: str) -> bool:
        return self.scopes.issuperset(scopes)


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


class TokenValidator(Protocol):
    """`validate` returns the caller's AuthInfo or raises InvalidTokenError (401),
    InsufficientScopeError (403) or AuthorizationServerUnavailableError (503). All a user's
    own validator needs (validators.base has the bases of the built-in ones)."""

    async def validate(self, token: str) -> AuthInfo: ...
