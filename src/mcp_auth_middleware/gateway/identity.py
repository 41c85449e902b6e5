"""The caller's identity as the gateway hands it to the upstream: request headers, and
optionally a short-lived signed assertion of the same (a JWT, RFC 7519).

Headers are only as true as the gateway that sets them: its configuration must overwrite (or
remove) them on every request, or a client sends its own (docs/gateways.md). The assertion
does not depend on that: the upstream verifies its signature, issuer, audience and age with
`verify_assertion` (or any JWT library) against the keys the service publishes. It carries an
explicit type (RFC 8725 §3.11), so it cannot pass for an access token anywhere.
"""

from __future__ import annotations

import base64
import secrets
import time
from collections.abc import Mapping
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, Key, KeySet, OKPKey, RSAKey

from ..auth_info import AuthInfo
from ..errors import InvalidTokenError
from ..jose import KEY_IMPORT_ERRORS
from ..validators.jwks import import_keys
from .options import GatewayOptions

__all__ = ["ASSERTION_TYPE", "Identity", "encode_value", "verify_assertion"]

#: The `typ` of the assertion's JOSE header.
ASSERTION_TYPE = "mcp-identity+jwt"
_CURVES = {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512", "Ed25519": "EdDSA"}
_VISIBLE = frozenset(range(0x20, 0x7F))
_ALGORITHMS = ["ES256", "ES384", "ES512", "EdDSA", "RS256"]


def encode_value(text: str) -> bytes:
    """A header value for any text: as is when it is visible ASCII without surrounding spaces,
    else `=?base64?...?=` (UTF-8), the form MCP 2026-07-28 uses for `Mcp-Name`."""
    raw = text.encode("utf-8")
    if raw and set(raw) <= _VISIBLE and raw[0] != 0x20 and raw[-1] != 0x20 and not raw.startswith(b"=?"):
        return raw
    return b"=?base64?" + base64.b64encode(raw) + b"?="


def _signing_key(material: str | Mapping[str, Any]) -> tuple[Key, str]:
    key: Key | None = None
    for key_class in (ECKey, OKPKey, RSAKey):
        try:
            key = key_class.import_key(dict(material) if isinstance(material, Mapping) else material)
            break
        except KEY_IMPORT_ERRORS:
            continue
    if key is None or not key.is_private:
        raise ValueError("assertion_key must be a private EC, Ed25519 or RSA key (PEM text or a JWK)")
    algorithm = "RS256" if isinstance(key, RSAKey) else _CURVES.get(str(key.as_dict().get("crv")), "")
    if not algorithm:
        raise ValueError("assertion_key: an EC key on P-256, P-384 or P-521, or an Ed25519 key")
    return key, algorithm


class Identity:
    """What an allowed request's answer carries for the upstream."""

    def __init__(self, options: GatewayOptions, audience: str) -> None:
        self.names = [(what, name.lower().encode("ascii")) for what, name in options.identity_headers.items()]
        self.audience = audience
        self.issuer = options.assertion_issuer or audience
        self.lifetime = options.assertion_lifetime
        self.assertion_header = options.assertion_header.lower().encode("ascii")
        self.nobody = [(name, b"") for _, name in self.names] + [(self.assertion_header, b"")]
        self.jwks: dict[str, Any] | None = None
        self._key: Key | None = None
        if options.assertion_key is not None:
            self._key, self._algorithm = _signing_key(options.assertion_key)
            public = self._key.as_dict(private=False)
            public.update(kid=public.get("kid") or self._key.thumbprint(), use="sig", alg=self._algorithm)
            self.jwks = {"keys": [public]}
            self._header = {"alg": self._algorithm, "typ": ASSERTION_TYPE, "kid": public["kid"]}

    def headers(self, info: AuthInfo | None) -> list[tuple[bytes, bytes]]:
        """Every identity header, empty when there is nothing to say (a public path, a token
        without `client_id`): gateways that copy them (Caddy, Traefik, Envoy) then overwrite a
        client's own on every request; one that is absent they may leave as the client sent it."""
        if info is None:
            return self.nobody
        # Built once per verified token (AuthInfo is cached with it); the assertion is per request.
        named = info.derived(self._named)
        if self._key is None:
            return named
        return [*named[:-1], (self.assertion_header, self.assertion(info).encode("ascii"))]

    def _named(self, info: AuthInfo) -> list[tuple[bytes, bytes]]:
        values = {
            "sub": info.sub,
            "client_id": info.client_id,
            "scopes": " ".join(sorted(info.scopes)),
            "issuer": info.issuer,
        }
        headers = [(name, encode_value(value) if (value := values[what]) else b"") for what, name in self.names]
        return [*headers, (self.assertion_header, b"")]

    def assertion(self, info: AuthInfo) -> str:
        assert self._key is not None
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience,
            "iat": now,
            "exp": now + self.lifetime,
            "jti": secrets.token_urlsafe(16),
            "sub": info.sub,
            "client_id": info.client_id,
            "scope": " ".join(sorted(info.scopes)),
            "token_iss": info.issuer,
        }
        if info.actors:
            claims["act"] = info.claims.get("act")
        claims = {name: value for name, value in claims.items() if value not in (None, "")}
        return jwt.encode(self._header, claims, self._key, algorithms=[self._algorithm])


def verify_assertion(
    assertion: str, keys: Any, *, issuer: str, audience: str, leeway: int = 5, now: float | None = None
) -> dict[str, Any]:
    """The claims of an identity assertion the service signed, for an upstream to trust:
    its type, signature (with `keys`: the service's JWKS, a JWK or PEM of its public key),
    issuer, audience and lifetime are checked. Raises InvalidTokenError."""
    try:
        token = jwt.decode(assertion, KeySet(import_keys(keys)), algorithms=_ALGORITHMS)
    except (JoseError, ValueError) as exc:
        raise InvalidTokenError("The identity assertion is malformed or its signature does not verify") from exc
    if token.header.get("typ") != ASSERTION_TYPE:
        raise InvalidTokenError(f"Not an identity assertion (typ is not {ASSERTION_TYPE})")
    claims = token.claims
    moment = time.time() if now is None else now
    if claims.get("iss") != issuer:
        raise InvalidTokenError("The identity assertion is from another issuer")
    if claims.get("aud") != audience:
        raise InvalidTokenError("The identity assertion is for another audience")
    expires, issued = claims.get("exp"), claims.get("iat")
    if not isinstance(expires, int) or not isinstance(issued, int):
        raise InvalidTokenError("The identity assertion has no lifetime")
    if expires + leeway < moment or issued - leeway > moment:
        raise InvalidTokenError("The identity assertion has expired (or is from the future)")
    return claims
