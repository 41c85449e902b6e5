"""The broker's leg to the real provider, as one confidential OpenID Connect client: the
authorization request with PKCE S256 (RFC 7636), `state` and `nonce`; the callback checked
(`state` in constant time, `iss` per RFC 9207 §2.4, the provider's `error`); the code exchanged
with the client secret; the ID token verified (OpenID Connect Core 1.0 §3.1.3.7: signature by
the provider's JWKS, `iss`, `aud`, `exp`, `nonce`). Keeping what `start` returns, bound to the
browser, is the caller's part."""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal
from urllib.parse import urlencode

import httpx2
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from joserfc import jwt
from joserfc.errors import JoseError

from ..discovery import discover_authorization_server
from ..errors import AuthError
from ..fetch import describe_failure, json_body, request_limited
from ..jose import MalformedJOSE, compact_parts, json_object
from ..validators.jwks import JWKSKeys

__all__ = ["IssuerCheck", "Pending", "ProviderError", "Upstream", "UpstreamGrant"]

#: Whether an ID token's claims name an issuer this client accepts (a multi-tenant provider, such
#: as Entra's `organizations` endpoint, signs each tenant's tokens with that tenant's issuer).
IssuerCheck = Callable[[Mapping[str, Any]], bool]

_ID_TOKEN_ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"]
_KEY_TYPES = {"RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP"}
_LEEWAY = 60


class ProviderError(Exception):
    """The provider's leg failed: `reason` for the page the user sees (no token, no markup),
    `detail` for the operator's log; `unavailable` when the provider could not be reached."""

    def __init__(self, reason: str, detail: str = "", *, unavailable: bool = False) -> None:
        super().__init__(reason)
        self.reason, self.detail, self.unavailable = reason, detail or reason, unavailable


@dataclass(frozen=True)
class Pending:
    """What `start` made and `finish` needs: kept by the broker, bound to the browser."""

    state: str
    nonce: str
    verifier: str
    redirect_uri: str


@dataclass(frozen=True)
class UpstreamGrant:
    """The signed-in user at the provider, and the provider's tokens (never sent to MCP clients)."""

    subject: str
    claims: dict[str, Any]
    access_token: str
    refresh_token: str | None
    expires_at: float | None
    scope: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


class Upstream:
    """One provider, one confidential client: `await Upstream.discover(issuer, id, secret)`."""

    def __init__(
        self,
        metadata: Mapping[str, Any],
        client_id: str,
        client_secret: str,
        *,
        scopes: tuple[str, ...] = ("openid", "profile", "email"),
        parameters: Mapping[str, str] | None = None,
        http_client: httpx2.AsyncClient | None = None,
        allow_http: bool = False,
        timeout: float = 10.0,
        identity: Literal["id_token", "userinfo"] = "id_token",
        subject_claim: str = "sub",
        issuer_check: IssuerCheck | None = None,
    ) -> None:
        # Who signed in: from the verified ID token (OpenID Connect), or, for a provider without
        # OpenID Connect (GitHub), from its user endpoint called with the fresh access token.
        needed = ("jwks_uri",) if identity == "id_token" else ("userinfo_endpoint",)
        for name in ("issuer", "authorization_endpoint", "token_endpoint", *needed):
            if not isinstance(metadata.get(name), str):
                raise ValueError(f"the provider's metadata has no {name}")
        self.metadata = dict(metadata)
        self.issuer: str = metadata["issuer"]
        self.client_id, self._client_secret = client_id, client_secret
        self.scopes, self.parameters = scopes, dict(parameters or {})
        self._http = http_client or httpx2.AsyncClient(timeout=timeout, follow_redirects=False)
        self._keys = (
            JWKSKeys(metadata["jwks_uri"], http_client=self._http, allow_http=allow_http)
            if identity == "id_token"
            else None
        )
        self._timeout = timeout
        self.identity, self.subject_claim = identity, subject_claim
        self._issuer_check = issuer_check

    @classmethod
    async def discover(cls, issuer: str, client_id: str, client_secret: str, **options: Any) -> Upstream:
        """From the provider's metadata (RFC 8414, or OpenID Connect Discovery), its issuer checked."""
        metadata = await discover_authorization_server(issuer, allow_http=options.get("allow_http", False))
        return cls(metadata, client_id, client_secret, **options)

    async def aclose(self) -> None:
        await self._http.aclose()

    def start(
        self, redirect_uri: str, *, state: str | None = None, scopes: tuple[str, ...] | None = None
    ) -> tuple[str, Pending]:
        """The provider's authorization URL to send the browser to, and what to keep for `finish`
        (`state`: the caller's own unguessable one, if it keys its records by it)."""
        pending = Pending(
            state or secrets.token_urlsafe(32), secrets.token_urlsafe(32), secrets.token_urlsafe(48), redirect_uri
        )

        query = {
            **self.parameters,
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": redirect_uri,
            "scope": " ".join(scopes if scopes is not None else self.scopes),
            "state": pending.state,
            "nonce": pending.nonce,
            "code_challenge": create_s256_code_challenge(pending.verifier),
            "code_challenge_method": "S256",
        }
        endpoint = self.metadata["authorization_endpoint"]
        return f"{endpoint}{'&' if '?' in endpoint else '?'}{urlencode(query)}", pending

    async def finish(self, callback: Mapping[str, str], pending: Pending) -> UpstreamGrant:
        """The callback's parameters checked, the code exchanged, the ID token verified."""
        state = callback.get("state", "")
        if not hmac.compare_digest(state.encode(), pending.state.encode()):
            raise ProviderError("The sign-in was not started here", "state missing or not this browser's")
        issuer = callback.get("iss")
        if issuer is None and self.metadata.get("authorization_response_iss_parameter_supported"):
            raise ProviderError("The provider's answer is incomplete", "RFC 9207 §2.4: iss missing from the callback")
        if issuer is not None and not (
            self._issuer_check({"iss": issuer}) if self._issuer_check else issuer == self.issuer
        ):
            raise ProviderError("The answer came from another provider", f"RFC 9207 §2.4: iss {issuer!r}")
        if "error" in callback:
            error = callback["error"]
            if error == "access_denied":
                raise ProviderError("The sign-in was cancelled or refused at the provider", "access_denied")
            raise ProviderError("The provider could not sign you in", f"the provider answered error={error!r}")
        code = callback.get("code")
        if not code:
            raise ProviderError("The provider's answer is incomplete", "no code in the callback")
        answer = await self._token_request(
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": pending.redirect_uri,
                "code_verifier": pending.verifier,
            }
        )
        if self.identity == "userinfo":
            claims = await self._userinfo(answer["access_token"])
        else:
            claims = await self._id_token_claims(answer.get("id_token"), pending.nonce)
        return _grant(answer, claims, self.subject_claim)

    async def refresh(self, refresh_token: str) -> UpstreamGrant:
        """A new provider access token (a tool calling the provider's own APIs)."""
        answer = await self._token_request({"grant_type": "refresh_token", "refresh_token": refresh_token})
        usable = self.identity == "id_token" and answer.get("id_token")
        claims = await self._id_token_claims(answer["id_token"], None) if usable else {}
        grant = _grant(answer, claims, self.subject_claim)
        return grant if grant.refresh_token else replace(grant, refresh_token=refresh_token)  # not rotated: kept

    async def _token_request(self, form: dict[str, str]) -> dict[str, Any]:
        endpoint = self.metadata["token_endpoint"]
        try:
            status, body, headers = await request_limited(
                self._http, "POST", endpoint, 256 * 1024, data=form, auth=(self.client_id, self._client_secret)
            )
        except (httpx2.HTTPError, OSError, ValueError) as exc:
            raise ProviderError(
                "The provider cannot be reached; try again later", describe_failure(exc, endpoint), unavailable=True
            ) from None
        try:
            answer = json_body(body, headers, endpoint)
        except ValueError as exc:
            raise ProviderError("The provider's answer is not usable", str(exc), unavailable=status >= 500) from None
        if status != 200 or not isinstance(answer, dict) or not isinstance(answer.get("access_token"), str):
            error = answer.get("error") if isinstance(answer, dict) else None
            detail = f"token endpoint {status}: error={error!r}"
            raise ProviderError("The provider refused the sign-in", detail, unavailable=status >= 500)
        return answer

    async def _userinfo(self, access_token: str) -> dict[str, Any]:
        """The user, from the provider's user endpoint (GitHub's `/user`: its `id` is the subject)."""
        endpoint = self.metadata["userinfo_endpoint"]
        headers = {"authorization": f"Bearer {access_token}", "accept": "application/json"}
        try:
            status, body, answer_headers = await request_limited(
                self._http, "GET", endpoint, 256 * 1024, headers=headers
            )
            answer = json_body(body, answer_headers, endpoint)
        except (httpx2.HTTPError, OSError, ValueError) as exc:
            raise ProviderError(
                "The provider cannot be reached; try again later", describe_failure(exc, endpoint), unavailable=True
            ) from None
        subject = answer.get(self.subject_claim) if isinstance(answer, dict) else None
        if status != 200 or not isinstance(answer, dict) or subject in (None, ""):
            raise ProviderError(
                "The provider's answer is not usable", f"user endpoint {status}: no {self.subject_claim}"
            )
        return dict(answer) | {self.subject_claim: str(subject)}

    async def _id_token_claims(self, id_token: Any, nonce: str | None) -> dict[str, Any]:
        if not isinstance(id_token, str):
            raise ProviderError("The provider's answer is incomplete", "no id_token (is openid among the scopes?)")
        try:
            header = json_object(compact_parts(id_token.encode(), 64 * 1024)[0])
            algorithm = header.get("alg")
            if algorithm not in _ID_TOKEN_ALGORITHMS:
                raise ProviderError("The provider's answer is not usable", f"ID token alg {algorithm!r} refused")
            assert self._keys is not None  # identity == "id_token"
            keys = await self._keys.keys_for(header.get("kid"), _KEY_TYPES[str(algorithm)[:2]])
            token = None
            for key in keys:
                try:
                    token = jwt.decode(id_token, key, algorithms=[str(algorithm)])
                    break
                except JoseError:
                    continue
        except (MalformedJOSE, ValueError) as exc:
            raise ProviderError("The provider's answer is not usable", f"ID token: {exc}") from None
        except AuthError as exc:  # the key set could not be fetched, or has no usable key
            detail = exc.detail or str(exc)
            raise ProviderError("The provider cannot be reached; try again later", detail, unavailable=True) from None
        if token is None:
            raise ProviderError("The provider's answer is not usable", "ID token signature not verified by its JWKS")
        claims = dict(token.claims)
        now = time.time()
        audience = claims.get("aud")
        issuer_ok = self._issuer_check(claims) if self._issuer_check else claims.get("iss") == self.issuer
        problems = [
            (not issuer_ok, f"iss {claims.get('iss')!r}"),
            (self.client_id not in (audience if isinstance(audience, list) else [audience]), f"aud {audience!r}"),
            (not isinstance(claims.get("exp"), int | float) or claims["exp"] + _LEEWAY < now, "expired"),
            (nonce is not None and not hmac.compare_digest(str(claims.get("nonce", "")), nonce), "nonce differs"),
            (not isinstance(claims.get("sub"), str) or not claims["sub"], "no sub"),
            (not claims.get(self.subject_claim), f"no {self.subject_claim}"),
        ]
        for failed, what in problems:
            if failed:
                raise ProviderError("The provider's answer is not usable", f"ID token: {what}")
        return claims


def _grant(answer: dict[str, Any], claims: dict[str, Any], subject_claim: str) -> UpstreamGrant:
    expires_in = answer.get("expires_in")
    return UpstreamGrant(
        subject=str(claims.get(subject_claim, "")),
        claims=claims,
        access_token=answer["access_token"],
        refresh_token=answer.get("refresh_token") if isinstance(answer.get("refresh_token"), str) else None,
        expires_at=time.time() + expires_in if isinstance(expires_in, int | float) else None,
        scope=answer.get("scope") if isinstance(answer.get("scope"), str) else None,
        raw=answer,
    )
