"""`WWW-Authenticate` challenges and the error responses that carry them (RFC 6750 §3, RFC 9728 §5.1).

Responses are built from our own fixed strings and the operator's configuration only, never
from request input (RFC 6750 §3); the handful of distinct answers are built once and reused.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from functools import lru_cache

from starlette.types import Send

from .config import AuthConfig
from .errors import AuthError, AuthorizationServerUnavailableError, InsufficientScopeError, TooManyFailuresError
from .values import SCOPE_TOKEN, check_scope_token

__all__ = [
    "MISCONFIGURED",
    "NOT_AN_AUTHORIZATION_SERVER",
    "Challenger",
    "RawResponse",
    "asks_for_authorization_server_metadata",
    "safe_description",
]

# RFC 6750 §3 error_description: %x20-21 / %x23-5B / %x5D-7E.
_UNSAFE_DESCRIPTION = re.compile(r"[^\x20\x21\x23-\x5b\x5d-\x7e]")

RawResponse = tuple[int, list[tuple[bytes, bytes]], bytes]
#: Errors about the DPoP proof: only the DPoP challenge carries them (RFC 9449 §7.1, §8).
_DPOP_ERRORS = frozenset({"invalid_dpop_proof", "use_dpop_nonce"})
#: Every JSON answer of ours: its type, and no content sniffing by browsers.
_JSON_HEADERS = ((b"content-type", b"application/json"), (b"x-content-type-options", b"nosniff"))
#: An authorization server's metadata asked of this resource (MCP Inspector 1.x probes
#: `/.well-known/oauth-authorization-server` and `/.well-known/openid-configuration` on the
#: MCP server): not here, which a 404 says plainly; a 401 would read as a failed sign-in.
NOT_AN_AUTHORIZATION_SERVER: RawResponse = (
    404,
    [*_JSON_HEADERS, (b"cache-control", b"no-store")],
    b'{"error": "not_found", "error_description": "This is a protected resource, not an authorization server: '
    b'its metadata (/.well-known/oauth-protected-resource) names the authorization server"}',
)
_AUTHORIZATION_SERVER_METADATA = ("/.well-known/oauth-authorization-server", "/.well-known/openid-configuration")


def asks_for_authorization_server_metadata(path: str) -> bool:
    """RFC 8414 §3 (the well-known URI, path-inserted or not) and OpenID Connect Discovery §4
    (appended to the issuer's path)."""
    return path.startswith(_AUTHORIZATION_SERVER_METADATA) or path.endswith(_AUTHORIZATION_SERVER_METADATA[1])


#: A configuration that cannot work: 503, and the log says why (never the client).
MISCONFIGURED: RawResponse = (
    503,
    [(b"content-type", b"application/json"), (b"x-content-type-options", b"nosniff"), (b"cache-control", b"no-store")],
    b'{"error": "server_misconfigured", "error_description": "The server is misconfigured for authorization; '
    b'its log says why"}',
)


def safe_description(text: str) -> str:
    """Keep a description within the RFC 6750 character set, whatever a custom validator raised."""
    return _UNSAFE_DESCRIPTION.sub("?", text)[:200]


def _quoted_params(params: Iterable[tuple[str, str | None]]) -> str:
    return ", ".join(f'{name}="{value}"' for name, value in params if value)


class Challenger:
    """Builds the answers for one protected resource; each distinct answer is cached."""

    def __init__(
        self,
        resource_metadata_url: str,
        scopes: Iterable[str] = (),
        *,
        realm: str | None = None,
        dpop_algorithms: Iterable[str] = (),
        bearer: bool = True,
    ):
        if '"' in resource_metadata_url or "\\" in resource_metadata_url:
            raise ValueError("resource metadata URL must not contain quotes or backslashes")
        self.resource_metadata_url = resource_metadata_url
        self.scope = " ".join(check_scope_token(s) for s in scopes) or None
        self.realm = realm
        # RFC 9449 §7.1: with DPoP accepted, challenges offer the DPoP scheme with its `algs`
        # too (and only it when bearer tokens are not accepted).
        self.dpop_algs = " ".join(dpop_algorithms) or None
        self.bearer = bearer or not self.dpop_algs
        self.unauthorized: RawResponse = self._build(401, None, None, self.scope)
        # Keyed by value, not by the exception object, so nothing request-bound is retained.
        self._cached = lru_cache(maxsize=256)(self._for_error)

    @classmethod
    def for_config(cls, config: AuthConfig, resource_metadata_url: str) -> Challenger:
        """The challenges of a configuration: its required scopes; with DPoP, the DPoP scheme
        too (RFC 9449 §7.1), or only it when bearer tokens are refused."""
        dpop = config.dpop
        return cls(
            resource_metadata_url,
            sorted(config.scopes.required),
            realm=config.realm,
            dpop_algorithms=dpop.algorithms if dpop is not None else (),
            bearer=dpop is None or not dpop.required,
        )

    def for_error(self, error: AuthError) -> RawResponse:
        scopes = error.scopes if isinstance(error, InsufficientScopeError) else frozenset()
        retry_after = (
            max(1, int(error.retry_after))
            if isinstance(error, AuthorizationServerUnavailableError | TooManyFailuresError)
            else 0
        )
        nonce = getattr(error, "nonce", None) if error.error == "use_dpop_nonce" else None
        return self._cached(error.status, error.error, error.description, scopes, retry_after, nonce)

    def _for_error(
        self,
        status: int,
        error: str,
        description: str,
        scopes: frozenset[str],
        retry_after: int,
        nonce: str | None = None,
    ) -> RawResponse:
        if status in (429, 503):
            # 503 and 429 are not challenges: the token may be fine, come back later.
            body = json.dumps({"error": error, "error_description": safe_description(description)})
            headers = [*_JSON_HEADERS, (b"cache-control", b"no-store")]
            if retry_after:  # a misconfiguration gets none: waiting does not help
                headers.append((b"retry-after", str(retry_after).encode()))
            return status, headers, body.encode()
        # A custom validator's scopes are filtered, not trusted, before they enter a header.
        scope = " ".join(sorted(s for s in scopes if SCOPE_TOKEN.fullmatch(s))) or self.scope
        answer = self._build(status, error, safe_description(description), scope)
        if nonce is not None and SCOPE_TOKEN.fullmatch(nonce):  # RFC 9449 §8: the nonce to use
            answer = (answer[0], [*answer[1], (b"dpop-nonce", nonce.encode("ascii"))], answer[2])
        return answer

    def _build(self, status: int, error: str | None, description: str | None, scope: str | None) -> RawResponse:
        # RFC 6750 §3: no `error` when the request carried no credentials at all.
        params = [
            ("realm", self.realm),
            ("error", error),
            ("error_description", description),
            ("scope", scope),
            ("resource_metadata", self.resource_metadata_url),
        ]
        challenges = []
        if self.bearer and error not in _DPOP_ERRORS:
            challenges.append("Bearer " + _quoted_params(params))
        if self.dpop_algs:
            challenges.append("DPoP " + _quoted_params([*params, ("algs", self.dpop_algs)]))
        body: dict[str, str] = {"error": error or "unauthorized"}
        if description:
            body["error_description"] = description
        headers = [
            *_JSON_HEADERS,
            *((b"www-authenticate", challenge.encode("latin-1")) for challenge in challenges),
            (b"cache-control", b"no-store"),
        ]
        return status, headers, json.dumps(body).encode()


async def send_response(send: Send, response: RawResponse, *, head: bool = False) -> None:
    status, headers, body = response
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*headers, (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": b"" if head else body})
