"""JWT access tokens (RFC 9068) with the audience and lifetime a request asked for."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

from authlib.common.security import generate_token
from authlib.oauth2.rfc9068 import JWTBearerTokenGenerator
from joserfc.jwk import KeySet

from .models import AuthorizationStore, Client, User

__all__ = [
    "JWTTokens",
    "issuing",
    "opaque_token",
    "token_actor",
    "token_audience",
    "token_confirmation",
    "token_lifetime",
]


#: The audience (RFC 8707 resources) and lifetime of the token being issued; Authlib's generator
#: calls back without the request, so these travel as context variables.
token_audience: ContextVar[str | list[str] | None] = ContextVar("local_as_audience", default=None)
#: The lifetime `mint_token(expires_in=...)` asks for; `expires_in` otherwise gives the server's own.
token_lifetime: ContextVar[int | None] = ContextVar("local_as_lifetime", default=None)
#: The DPoP key thumbprint a minted token is bound to (RFC 9449 §6.1: `cnf.jkt`).
token_confirmation: ContextVar[str | None] = ContextVar("local_as_confirmation", default=None)
#: Who acts for the subject of an exchanged token (RFC 8693 §4.1: the `act` claim).
token_actor: ContextVar[dict[str, Any] | None] = ContextVar("local_as_actor", default=None)


_UNSET: Any = object()
T = TypeVar("T")


@contextmanager
def issuing(
    *,
    audience: list[str] | None = _UNSET,
    lifetime: int | None = _UNSET,
    confirmation: str | None = _UNSET,
    actor: dict[str, Any] | None = _UNSET,
) -> Iterator[None]:
    """What the token issued within the block carries (the values given; the others as they are)."""
    with ExitStack() as stack:
        if audience is not _UNSET:
            _set(token_audience, audience[0] if audience and len(audience) == 1 else audience or None, stack)
        if lifetime is not _UNSET:
            _set(token_lifetime, lifetime, stack)
        if confirmation is not _UNSET:
            _set(token_confirmation, confirmation, stack)
        if actor is not _UNSET:
            _set(token_actor, actor, stack)
        yield


def _set(variable: ContextVar[T], value: T, stack: ExitStack) -> None:
    stack.callback(variable.reset, variable.set(value))


class JWTTokens(JWTBearerTokenGenerator):  # type: ignore[misc]
    def __init__(self, owner: AuthorizationStore) -> None:
        super().__init__(owner.issuer, refresh_token_generator=opaque_token, expires_generator=owner.expires_in)
        self.owner = owner

    def get_jwks(self) -> KeySet:
        return KeySet([self.owner.key])

    def get_extra_claims(self, client: Client, grant_type: str, user: User | None, scope: str) -> dict[str, Any]:
        jkt, act = token_confirmation.get(), token_actor.get()
        return {**({"cnf": {"jkt": jkt}} if jkt else {}), **({"act": act} if act else {})}

    def get_audiences(self, client: Client, user: User | None, scope: str) -> str | list[str]:
        audience = token_audience.get()
        return audience if audience else client.client_id


def opaque_token(*args: Any, **kwargs: Any) -> str:
    return str(generate_token(48))
