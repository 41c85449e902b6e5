"""`ExchangeAuth`: an `httpx2.Auth` that presents an exchanged token on each request: from the
cache while it lasts, exchanged again as it nears expiry, once more if the API says the token
is no longer good (401 `invalid_token`); for a DPoP-bound token, a fresh proof per request and
the API's nonce when it asks for one (RFC 9449 §7.1, §9)."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator, Iterable
from typing import TYPE_CHECKING

import httpx2

from ..auth_info import AuthInfo
from .grants import ExchangedToken

if TYPE_CHECKING:
    from .client import TokenExchange

__all__ = ["ExchangeAuth"]


class ExchangeAuth(httpx2.Auth):
    requires_request_body = True  # a request may be sent twice (a nonce, a new token)

    def __init__(
        self,
        exchange: TokenExchange,
        subject: str,
        info: AuthInfo,
        downstream: str,
        scopes: str | Iterable[str] | None,
    ) -> None:
        exchange.target(downstream)  # an unknown name fails here, where the tool asks for it
        self._exchange, self._subject, self._info = exchange, subject, info
        self._downstream, self._scopes = downstream, scopes

    def __repr__(self) -> str:
        return f"ExchangeAuth({self._downstream!r})"

    def sync_auth_flow(self, request: httpx2.Request) -> Generator[httpx2.Request, httpx2.Response, None]:
        raise RuntimeError("ExchangeAuth exchanges tokens asynchronously: use it with httpx2.AsyncClient")
        yield request  # pragma: no cover

    async def async_auth_flow(self, request: httpx2.Request) -> AsyncGenerator[httpx2.Request, httpx2.Response]:
        token = await self._token(fresh=False)
        self._present(request, token)
        response = yield request
        if response.status_code != 401:
            return
        challenge = response.headers.get("www-authenticate", "")
        proofs = self._exchange.proofs
        if token.token_type == "DPoP" and "use_dpop_nonce" in challenge and proofs is not None:
            if proofs.remember_nonce(str(request.url), response.headers.get("dpop-nonce")):
                self._present(request, token)
                yield request
        elif "invalid_token" in challenge:
            # Revoked, or refused early: exchange once more, then the API's answer stands.
            self._present(request, await self._token(fresh=True))
            yield request

    async def _token(self, *, fresh: bool) -> ExchangedToken:
        return await self._exchange.exchanged(self._subject, self._info, self._downstream, self._scopes, fresh=fresh)

    def _present(self, request: httpx2.Request, token: ExchangedToken) -> None:
        request.headers["Authorization"] = token.authorization
        if token.token_type == "DPoP":
            assert self._exchange.proofs is not None
            request.headers["DPoP"] = self._exchange.proofs.proof(request.method, str(request.url), token.access_token)
