"""DPoP proofs made by this server as a client (RFC 9449 §4.2): for the token request that asks
for a bound downstream token (§5), and for each request that presents it (§7.1, with `ath`).
Server-provided nonces (§8, §9) are remembered per origin and sent back."""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from joserfc import jwt
from joserfc.jwk import ECKey, Key, OKPKey, RSAKey

__all__ = ["ProofMaker", "htu_of"]

_ALGORITHMS = {"EC": {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}, "OKP": {"Ed25519": "EdDSA"}}


def htu_of(url: str) -> str:
    """The `htu` of a request: its URL without query and fragment (RFC 9449 §4.2)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


class ProofMaker:
    """Signs DPoP proofs with one key (generated, P-256, unless given): the key the downstream
    tokens are bound to. Share the key between replicas to share the tokens."""

    def __init__(self, key: Key | None = None) -> None:
        self.key = key or ECKey.generate_key("P-256", private=True)
        if isinstance(self.key, RSAKey):
            self.algorithm = "PS256"
        elif isinstance(self.key, ECKey | OKPKey):
            self.algorithm = _ALGORITHMS[self.key.key_type].get(str(self.key.as_dict().get("crv")), "")
        else:
            self.algorithm = ""
        if not self.algorithm or not self.key.is_private:
            raise ValueError("a DPoP key must be a private RSA, EC (P-256/384/521) or Ed25519 key")
        public = self.key.as_dict(private=False)
        self._header: dict[str, Any] = {"typ": "dpop+jwt", "alg": self.algorithm, "jwk": public}
        #: RFC 7638 thumbprint: the `cnf.jkt` of the tokens bound to this key.
        self.thumbprint = self.key.thumbprint()
        self._nonces: dict[str, str] = {}  # origin -> the nonce it last gave

    def proof(self, method: str, url: str, access_token: str | None = None) -> str:
        claims: dict[str, Any] = {
            "jti": secrets.token_urlsafe(16),
            "htm": method,
            "htu": htu_of(url),
            "iat": int(time.time()),
        }
        if access_token is not None:
            digest = hashlib.sha256(access_token.encode("ascii")).digest()
            claims["ath"] = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        nonce = self._nonces.get(_origin(url))
        if nonce is not None:
            claims["nonce"] = nonce
        return jwt.encode(self._header, claims, self.key, algorithms=[self.algorithm])

    def remember_nonce(self, url: str, nonce: str | None) -> bool:
        """Keep a `DPoP-Nonce` an origin sent; whether it is new (worth a retry)."""
        if not nonce or len(nonce) > 512:
            return False
        origin = _origin(url)
        new = self._nonces.get(origin) != nonce
        if len(self._nonces) >= 1024:
            self._nonces.clear()
        self._nonces[origin] = nonce
        return new


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()
