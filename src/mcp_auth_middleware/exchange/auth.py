"""`ExchangeAuth`: an `httpx2.Auth` that presents an exchanged token on each request: from the
cache while it lasts, exchanged again as it nears expiry, once more if the API says the token
is no longer good (401 `invalid_token`); for a DPoP-bound token, a fresh proof per request and
the API's nonce when it asks for one (RFC 9449 §7.1, §9)."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable, Generator

import httpx2

from .grants import ExchangedToken
from .proofs import ProofMaker

__all__ = ["ExchangeAuth"]

#: The exchanged token (`fresh`: not from the cache).
TokenSource = Callable[[bool], Awaitable[ExchangedToken]]


class ExchangeAuth(httpx2.Auth):
    """Built by `TokenExchange.auth`, bound to one caller and one downstream."""

    requires_request_body = True  # a request may be sent twice (a nonce, a new token)

    def __init__(self, token: TokenSource, proofs: ProofMaker | None, downstream: str) -> None:
        self._token, self._proofs, self._downstream = token, proofs, downstream

    def __repr__(self) -> str:
        return f"ExchangeAuth({self._downstream!r})"

    def sync_auth_flow(self, request: httpx2.Request) -> Generator[httpx2.Request, httpx2.Response, None]:
        raise RuntimeError("ExchangeAuth exchanges tokens asynchronously: use it with httpx2.AsyncClient")
        yield request  # pragma: no cover

    async def async_auth_flow(self, request: httpx2.Request) -> AsyncGenerator[httpx2.Request, httpx2.Response]:
        token = await self._token(False)
        self._present(request, token)
        response = yield request
        if response.status_code != 401:
            return
        challenge = response.headers.get("www-authenticate", "")
        if token.token_type == "DPoP" and "use_dpop_nonce" in challenge and self._proofs is not None:
            if self._proofs.remember_nonce(str(request.url), response.headers.get("dpop-nonce")):
                self._present(request, token)
                yield request
        elif "invalid_token" in challenge:
            # Revoked, or refused early: exchange once more, then the API's answer stands.
            self._present(request, await self._token(True))
            yield request

    def _present(self, request: httpx2.Request, token: ExchangedToken) -> None:
        request.headers["Authorization"] = token.authorization
        if token.token_type == "DPoP":
            assert self._proofs is not None
            request.headers["DPoP"] = self._proofs.proof(request.method, str(request.url), token.access_token)
