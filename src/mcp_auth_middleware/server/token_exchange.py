"""The token-exchange grant (RFC 8693) of the local authorization server: a resource server
trades the access token it received for one to call another API on the same user's behalf.

What a client may exchange is a policy (`ExchangePolicy`): only tokens issued for its own
resources, only for the downstream resources named, and only narrowing scope (the result never
holds a scope the subject token lacks). The issued token keeps the subject's `sub` and names
the exchanging client in `act` (RFC 8693 §4.1), nested after any actor the subject token
already had; it never outlives the subject token, and a refresh token is never issued.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc6749.errors import (
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    UnauthorizedClientError,
)
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..dpop import DPoPVerifier, InvalidDPoPProofError, UseDPoPNonceError
from ..errors import AuthError
from .bridge import owner_of
from .jwt_tokens import issuing, token_confirmation
from .models import ExchangePolicy, Token, User
from .resource_indicators import InvalidTargetError

__all__ = ["ACCESS_TOKEN_TYPE", "TOKEN_EXCHANGE", "TokenExchangeGrant", "bound_key", "dpop_refusal"]

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"


class TokenExchangeGrant(grants.BaseGrant, grants.TokenEndpointMixin):  # type: ignore[misc]
    GRANT_TYPE = TOKEN_EXCHANGE
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

    def validate_token_request(self) -> None:
        client = self.authenticate_token_endpoint_client()
        owner = owner_of(self)
        policy = owner.exchange_policies.get(client.client_id)
        if policy is None or not client.check_grant_type(TOKEN_EXCHANGE):
            raise UnauthorizedClientError(description="This client may not exchange tokens")
        data = self.request.payload.data
        subject_token, subject_type = data.get("subject_token"), data.get("subject_token_type")
        if not subject_token or not subject_type:
            raise InvalidRequestError(description="subject_token and subject_token_type are required")
        if subject_type != ACCESS_TOKEN_TYPE:
            raise InvalidRequestError(description="Only access tokens are exchanged here")
        if data.get("actor_token") or data.get("actor_token_type"):
            raise InvalidRequestError(description="actor_token is not supported: the client itself is the actor")
        if data.get("requested_token_type", ACCESS_TOKEN_TYPE) != ACCESS_TOKEN_TYPE:
            raise InvalidRequestError(description="Only access tokens are issued here")
        subject = owner.by_access.get(subject_token)
        if subject is None or subject.revoked or subject.is_expired():
            raise InvalidGrantError(description="The subject token is not active")
        if not policy.from_resources.intersection(subject.resource):
            raise InvalidGrantError(description="The subject token was not issued for this client's resource")
        if subject.dpop_jkt:
            raise InvalidGrantError(description="A sender-constrained token cannot be exchanged by another party")
        self.request.client = client
        self.request.user = User(subject.sub)
        self.request.resource = _targets(self.request.payload.datalist, policy)
        self.request.subject = subject
        self.request.payload.data["scope"] = " ".join(sorted(_narrowed(data.get("scope"), subject, policy)))

    def create_token_response(self) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        subject: Token = self.request.subject
        owner = owner_of(self)
        targets: list[str] = self.request.resource
        # Never past the subject token: the exchange cannot extend the user's session.
        lifetime = max(1, min(owner.access_token_ttl, subject.issued_at + subject.expires_in - int(time.time())))
        act: dict[str, Any] = {"sub": self.request.client.client_id}
        if subject.act:
            act["act"] = subject.act  # RFC 8693 §4.1: the chain, the current actor outermost
        jkt = token_confirmation.get()  # a DPoP proof came with the request (checked by the route)
        with issuing(audience=targets, lifetime=lifetime, actor=act):
            token: dict[str, Any] = self.generate_token(
                user=self.request.user,
                scope=self.request.payload.data["scope"],
                expires_in=lifetime,
                include_refresh_token=False,
            )
        owner.save_token(
            token,
            client_id=self.request.client.client_id,
            sub=subject.sub,
            resource=targets,
            dpop_jkt=jkt,
            act=act,
        )
        token.pop("refresh_token", None)
        token.update(issued_token_type=ACCESS_TOKEN_TYPE, token_type="DPoP" if jkt else "Bearer")
        return 200, token, self.TOKEN_RESPONSE_HEADER


def _targets(datalist: Mapping[str, list[str]], policy: ExchangePolicy) -> list[str]:
    """`resource` and `audience` (RFC 8693 §2.1): at least one, each one the policy allows."""
    targets = [*datalist.get("resource", []), *datalist.get("audience", [])]
    if not targets:
        raise InvalidTargetError(description="Name the downstream resource (resource or audience)")
    refused = [t for t in targets if t not in policy.to_resources]
    if refused:
        raise InvalidTargetError(description="This client may not get tokens for that resource")
    return list(dict.fromkeys(targets))


def _narrowed(requested: str | None, subject: Token, policy: ExchangePolicy) -> set[str]:
    """The scope of the new token: what was asked (or all there is), within both the subject
    token's scope and the policy; asking for more is refused, never quietly trimmed."""
    held = set(subject.scope.split())
    allowed = held if policy.scopes is None else held & policy.scopes
    if requested:
        wanted = set(requested.split())
        if not wanted <= allowed:
            raise InvalidScopeError(description="The exchange cannot widen the scope of the subject token")
        return wanted
    if not allowed:
        raise InvalidScopeError(description="The subject token holds no scope this exchange may pass on")
    return allowed


async def bound_key(
    verifier: DPoPVerifier, request: Request, grant_type: str | None, token_endpoint: str
) -> str | None:
    """RFC 9449 §5: a token exchange that comes with a DPoP proof is bound to its key (the
    thumbprint returned); other grants here issue bearer tokens."""
    proofs = request.headers.getlist("dpop")
    if not proofs or grant_type != TOKEN_EXCHANGE:
        return None
    if len(proofs) > 1:
        raise InvalidDPoPProofError("The request carries more than one DPoP header")
    return await verifier.verify(proofs[0], method="POST", url=token_endpoint, access_token=None)


def dpop_refusal(error: AuthError) -> Response:
    """RFC 9449 §5, §8: the token endpoint's answer to a proof it cannot take."""
    headers = {"cache-control": "no-store"}
    if isinstance(error, UseDPoPNonceError):
        headers["dpop-nonce"] = error.nonce
        return JSONResponse({"error": "use_dpop_nonce", "error_description": error.description}, 400, headers)
    return JSONResponse({"error": "invalid_dpop_proof", "error_description": error.description}, 400, headers)
