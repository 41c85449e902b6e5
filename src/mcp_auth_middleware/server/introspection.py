"""An RFC 7662 token introspection endpoint that any Python authorization server can mount.

You provide an async token lookup; this endpoint does the rest: client authentication
(client_secret_basic, client_secret_post; secrets stored hashed, compared in constant time),
the response rules of RFC 7662 §2.1 and §2.2, a hook deciding which tokens a caller may learn
about, and rate limiting against token scanning (RFC 7662 §4).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote

from starlette.types import Receive, Scope, Send

from ..body import read_body
from ..errors import BodyTooLargeError, shown
from ..rate_limit import ClientAddresses, FailureLimiter, ForwardedHeader

__all__ = ["IntrospectionClient", "IntrospectionEndpoint", "TokenLookup", "hash_secret"]

#: `lookup(token, token_type_hint)` -> the token's RFC 7662 members (`scope`, `client_id`,
#: `exp`, `aud`, `sub`, `token_type`, ...), or None when the token is unknown or revoked.
#: The hint is only a hint: a lookup must search every kind of token it knows.
TokenLookup = Callable[[str, str | None], Awaitable[Mapping[str, Any] | None]]

logger = logging.getLogger("mcp_auth_middleware.server")

INACTIVE = b'{"active": false}'
#: RFC 7662 §2.2 members, plus `cnf`: a token bound to a DPoP key or a certificate must say so,
#: or the resource server would take it for a bearer token (RFC 9449 §6.2, RFC 8705 §3.2); and
#: `act`, who acts for the subject of an exchanged token (RFC 8693 §4.1).
RESPONSE_MEMBERS = (
    "scope",
    "client_id",
    "username",
    "token_type",
    "exp",
    "iat",
    "nbf",
    "sub",
    "aud",
    "iss",
    "jti",
    "cnf",
    "act",
)


def hash_secret(secret: str) -> str:
    """How client secrets are stored: SHA-256, hex. Generated secrets carry enough entropy
    that a slow password hash adds nothing but latency."""
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class IntrospectionClient:
    """A resource server allowed to introspect; `resources` are the audiences it serves."""

    client_id: str
    secret_hash: str
    resources: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def with_secret(cls, client_id: str, secret: str, resources: Iterable[str] = ()) -> IntrospectionClient:
        return cls(client_id, hash_secret(secret), frozenset(resources))

    def check_secret(self, secret: str) -> bool:
        return hmac.compare_digest(hash_secret(secret), self.secret_hash)


def default_may_introspect(client: IntrospectionClient, token: Mapping[str, Any]) -> bool:
    """RFC 7662 §4: a caller learns only about tokens meant for its resources, or its own tokens."""
    aud = token.get("aud")
    audiences = {aud} if isinstance(aud, str) else set(aud) if isinstance(aud, list) else set()
    return bool(audiences & client.resources) or token.get("client_id") == client.client_id


class IntrospectionEndpoint:
    """An ASGI app: mount it at your introspection path (`Route("/introspect", endpoint)`)."""

    def __init__(
        self,
        lookup: TokenLookup,
        clients: Mapping[str, IntrospectionClient] | Callable[[str], Awaitable[IntrospectionClient | None]],
        *,
        may_introspect: Callable[[IntrospectionClient, Mapping[str, Any]], bool] = default_may_introspect,
        client_limit: str = "600/minute",
        address_limit: str = "120/minute",
        storage_uri: str = "memory://",
        trusted_proxies: Iterable[str] = (),
        forwarded_header: ForwardedHeader = "x-forwarded-for",
        max_body: int = 16 * 1024,
    ) -> None:
        self.lookup = lookup
        self._clients = clients
        self.may_introspect = may_introspect
        # Misses (inactive answers) and failed client authentications are what scanning looks like.
        self.client_misses = FailureLimiter(client_limit, storage_uri=storage_uri, key_prefix="introspect-client")
        self.address_misses = FailureLimiter(address_limit, storage_uri=storage_uri, key_prefix="introspect-addr")
        self.client_address = ClientAddresses(trusted_proxies, forwarded_header)
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        status, headers, body = await self._respond(scope, receive)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"cache-control", b"no-store"),
                    (b"content-length", str(len(body)).encode()),
                    *headers,
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def _respond(self, scope: Scope, receive: Receive) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        if scope["method"] != "POST":
            return 405, [(b"allow", b"POST")], _error("invalid_request", "Use POST")
        headers = _headers(scope)
        if headers is None:
            return 400, [], _error("invalid_request", "A header that may appear once is repeated")
        if headers.get(b"content-type", b"").split(b";")[0].strip().lower() != b"application/x-www-form-urlencoded":
            return 400, [], _error("invalid_request", "Use application/x-www-form-urlencoded")
        address = self.client_address(scope)
        if (retry := await self.address_misses.retry_after(address)) is not None:
            return 429, [(b"retry-after", str(retry).encode())], _error("slow_down", "Too many requests")
        try:
            body, _ = await read_body(receive, self.max_body)
        except BodyTooLargeError:
            return 413, [], _error("invalid_request", "The request body is too large")
        try:
            form = _parse_form(body)
        except ValueError as exc:
            return 400, [], _error("invalid_request", str(exc))

        authorization = headers.get(b"authorization")
        if authorization is not None and authorization[:6].lower() == b"basic " and "client_secret" in form:
            # RFC 6749 §2.3: one client authentication method per request; §5.2: invalid_request.
            return 400, [], _error("invalid_request", "The request uses more than one client authentication method")
        client = await self._authenticate(authorization, form)
        if client is None:
            await self.address_misses.record_failure(address)
            return (
                401,
                [(b"www-authenticate", b'Basic realm="introspection"')],
                _error("invalid_client", "Client authentication failed"),
            )
        if (retry := await self.client_misses.retry_after(client.client_id)) is not None:
            return 429, [(b"retry-after", str(retry).encode())], _error("slow_down", "Too many requests")

        token = form.get("token")
        if not token:
            return 400, [], _error("invalid_request", "The token parameter is required")
        record = await self.lookup(token, form.get("token_type_hint"))
        dates = None if record is None else _current(record)
        if record is None or dates is None or not self.may_introspect(client, record):
            # RFC 7662 §2.2: unknown, expired, revoked and not-yours all look exactly the same.
            await self.client_misses.record_failure(client.client_id)
            await self.address_misses.record_failure(address)
            return 200, [], INACTIVE
        answer: dict[str, Any] = {"active": True}
        answer.update({k: record[k] for k in RESPONSE_MEMBERS if record.get(k) is not None})
        answer.update(dates)  # numbers, as RFC 7662 §2.2 has them
        return 200, [], json.dumps(answer).encode()

    async def _authenticate(self, authorization: bytes | None, form: dict[str, str]) -> IntrospectionClient | None:
        credentials = _basic(authorization) if authorization else None
        if credentials is None:
            client_id, secret = form.get("client_id"), form.get("client_secret")
            if not client_id or secret is None:
                return None
            credentials = (client_id, secret)
        client_id, secret = credentials
        client = self._clients.get(client_id) if isinstance(self._clients, Mapping) else await self._clients(client_id)
        # Hash the secret even for an unknown client, so timing does not reveal which ids exist.
        if client is None:
            hash_secret(secret)
            return None
        return client if client.check_secret(secret) else None


def _current(record: Mapping[str, Any]) -> dict[str, float] | None:
    """The token's NumericDates, if it is within `exp` and `nbf`; else None. A lookup may return
    them as strings (a Redis hash does): numeric strings are read as numbers, anything else
    makes the token inactive (fail closed) and is logged."""
    now = time.time()
    dates: dict[str, float] = {}
    for name in ("exp", "nbf", "iat"):
        value = record.get(name)
        if value is None:
            continue
        try:
            number = float(value) if isinstance(value, str) else value
            if isinstance(number, bool) or not isinstance(number, int | float) or not math.isfinite(number):
                raise ValueError(name)
        except ValueError:
            logger.warning("the token lookup returned %s=%s, not a number of seconds: inactive", name, shown(value))
            return None
        dates[name] = number
    if dates.get("exp", math.inf) <= now or dates.get("nbf", -math.inf) > now:
        return None
    return dates


_SINGLETONS = (b"authorization", b"content-type")


def _headers(scope: Scope) -> dict[bytes, bytes] | None:
    """The request headers by name; None when Authorization or Content-Type is repeated (we and
    a framework in front of us could each read a different one)."""
    headers: dict[bytes, bytes] = {}
    for name, value in scope["headers"]:
        if name in headers and name in _SINGLETONS:
            return None
        headers[name] = value
    return headers


def _parse_form(body: bytes) -> dict[str, str]:
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError as exc:
        raise ValueError("The body is not UTF-8") from exc
    form: dict[str, str] = {}
    for key, value in pairs:
        if key in form:
            raise ValueError("A parameter is repeated")  # RFC 6749 §3.1
        form[key] = value
    return form


def _basic(authorization: bytes) -> tuple[str, str] | None:
    # Not Authlib's extract_basic_authorization: it lets non-UTF-8 credentials raise and does
    # not undo the form-encoding of RFC 6749 §2.3.1 ("+" for space).
    scheme, _, encoded = authorization.partition(b" ")
    if scheme.lower() != b"basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        return None
    # RFC 6749 §2.3.1: both parts are form-urlencoded before base64.
    return unquote(client_id.replace("+", " ")), unquote(secret.replace("+", " "))


def _error(error: str, description: str) -> bytes:
    return json.dumps({"error": error, "error_description": description}).encode()
