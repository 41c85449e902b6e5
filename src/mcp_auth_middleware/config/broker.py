"""What the middleware asks of the broker it names (`broker=`): this contract, so that the
configuration and the request path depend on it, not on the broker package built on top of them."""

from __future__ import annotations

from typing import Protocol

from starlette.types import Receive, Scope, Send

from ..auth_info import TokenValidator

__all__ = ["BrokerContract"]


class _BrokerSettings(Protocol):
    @property
    def resources(self) -> tuple[str, ...]: ...

    @property
    def origin(self) -> str: ...


class BrokerContract(Protocol):
    """`mcp_auth_middleware.broker.Broker`, as the middleware sees it."""

    @property
    def settings(self) -> _BrokerSettings: ...

    @property
    def paths(self) -> frozenset[str]: ...

    def validator(self) -> TokenValidator: ...

    def public_path(self, path: str, root_path: str | None) -> str | None: ...

    async def aclose(self) -> None: ...

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None: ...
