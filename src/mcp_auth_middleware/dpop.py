"""DPoP proofs (RFC 9449): a sender-constrained token is good only with a fresh proof of
possession of the key it is bound to.

`DPoPVerifier.verify` does the resource server's checks of RFC 9449 §4.3 and §7.1 on one
`DPoP` header and returns the RFC 7638 thumbprint of the proof's key, which the caller compares
with the token's `cnf.jkt` (§6). Each proof's `jti` is accepted once within the `iat` window:
kept in the same `limits` storage as the token-guessing guard (memory, or Redis/Valkey shared
by several replicas). Optional server-provided nonces follow §8 and §9.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
import warnings
from collections.abc import Iterable
from typing import Any

from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwa import JWSAlgModel
from joserfc.jwk import ECKey, Key, OKPKey, RSAKey
from limits import parse
from limits.aio.strategies import FixedWindowRateLimiter

from .auth_info import AuthInfo
from .config import DEFAULT_DPOP_ALGORITHMS, DPoP
from .credentials import REPEATED_PROOFS
from .errors import AuthError, AuthorizationServerUnavailableError, InvalidTokenError
from .jose import KEY_IMPORT_ERRORS, MalformedJOSE, compact_parts, json_object
from .rate_limit import STORAGE_ERRORS, storage_for
from .urls import normalized_htu
from .validators.claims import is_numeric_date
from .values import word_list

__all__ = [
    "DEFAULT_DPOP_ALGORITHMS",
    "DPoPVerifier",
    "InvalidDPoPProofError",
    "UseDPoPNonceError",
]

_KEY_CLASSES: dict[str, type[RSAKey] | type[ECKey] | type[OKPKey]] = {"RSA": RSAKey, "EC": ECKey, "OKP": OKPKey}
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_MAX_PROOF = 8 * 1024


class InvalidDPoPProofError(InvalidTokenError):
    """The DPoP proof is missing, malformed, or does not fit the request (RFC 9449 §7.1)."""

    error = "invalid_dpop_proof"


class UseDPoPNonceError(AuthError):
    """The server wants a proof with its current nonce (RFC 9449 §8): 401 with `DPoP-Nonce`."""

    error = "use_dpop_nonce"
    status = 401

    def __init__(self, nonce: str, description: str = "Resource server requires a DPoP nonce") -> None:
        super().__init__(description)
        self.nonce = nonce


class DPoPVerifier:
    """Checks DPoP proofs for one resource server."""

    @classmethod
    def from_options(cls, options: DPoP, storage_uri: str) -> DPoPVerifier:
        return cls(
            algorithms=options.algorithms,
            max_age=options.max_age,
            leeway=options.leeway,
            nonces=options.nonces,
            nonce_secret=options.nonce_secret,
            storage_uri=storage_uri,
            required=options.required,
        )

    def __init__(
        self,
        *,
        algorithms: str | Iterable[str] = DEFAULT_DPOP_ALGORITHMS,
        max_age: int = 300,
        leeway: int = 30,
        nonces: bool = False,
        nonce_lifetime: int = 300,
        nonce_secret: str | None = None,
        storage_uri: str = "memory://",
        required: bool = False,
    ) -> None:
        options = DPoP(algorithms=tuple(word_list(algorithms)), max_age=max_age, leeway=leeway)  # checks them
        self.algorithms, self.max_age, self.leeway = options.algorithms, max_age, leeway
        self.required = required
        registry = jws.JWSRegistry(algorithms=list(self.algorithms), strict_check_header=False)
        with warnings.catch_warnings():  # "EdDSA is deprecated via RFC 9864": clients still use it
            warnings.simplefilter("ignore")
            self._models: dict[str, JWSAlgModel] = {name: registry.get_alg(name) for name in self.algorithms}
        # Each jti once per window: a fixed window of max_age + leeway on the shared storage.
        self._replays = FixedWindowRateLimiter(storage_for(storage_uri))
        self._once = parse(f"1/{max_age + leeway} seconds")
        self.nonces = nonces
        self.nonce_lifetime = nonce_lifetime
        # Replicas that share the secret issue and accept the same nonces.
        self._nonce_secret = nonce_secret.encode() if nonce_secret else secrets.token_bytes(32)
        self._keys: dict[str, tuple[Key, str]] = {}

    async def check_binding(
        self, info: AuthInfo, token: bytes, dpop_scheme: bool, proof: bytes | None, *, method: str, url: str
    ) -> None:
        """RFC 9449 §7: a DPoP token needs a proof by the key it is bound to; a bound token is
        never a bearer token (§7.2); with `required`, no bearer token is. `proof` is the DPoP
        header, or REPEATED_PROOFS for two of them."""
        if not dpop_scheme:
            if info.sender_constrained:
                raise InvalidTokenError("A sender-constrained token cannot be used as a bearer token", guess=False)
            if self.required:
                raise InvalidTokenError("This resource accepts DPoP-bound tokens only", guess=False)
            return
        if info.dpop_jkt is None:
            raise InvalidTokenError("The access token is not DPoP-bound", guess=False)
        if proof is None:
            raise InvalidDPoPProofError("A DPoP token needs a DPoP proof")
        if proof is REPEATED_PROOFS:
            raise InvalidDPoPProofError("The request carries more than one DPoP header")
        thumbprint = await self.verify(proof.decode("latin-1"), method=method, url=url, access_token=token.decode())
        if not hmac.compare_digest(thumbprint, info.dpop_jkt):
            raise InvalidDPoPProofError("The DPoP proof key is not the key the token is bound to")

    def current_nonce(self) -> str:
        """A nonce for this period, derivable on every replica that shares the secret."""
        return self._nonce_for(int(time.time()) // self.nonce_lifetime)

    def _nonce_for(self, period: int) -> str:
        digest = hmac.new(self._nonce_secret, str(period).encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest[:18]).decode().rstrip("=")

    def _nonce_ok(self, nonce: object) -> bool:
        period = int(time.time()) // self.nonce_lifetime
        # The current nonce, or the one before it (a client that fetched it a moment ago).
        return isinstance(nonce, str) and any(
            hmac.compare_digest(nonce, self._nonce_for(p)) for p in (period, period - 1)
        )

    async def verify(self, proof: str, *, method: str, url: str, access_token: str | None) -> str:
        """The RFC 7638 thumbprint of the proof's key, or InvalidDPoPProofError saying why.
        `access_token` None: a proof at a token endpoint, which has no `ath` (RFC 9449 §5)."""
        try:
            # joserfc's compact parser caps headers at 512 bytes, which an RSA key in `jwk`
            # exceeds: the proof is read as access tokens are (strict base64url and JSON).
            header_segment, signing_input, payload_segment, signature = compact_parts(
                proof.encode("ascii", "replace"), _MAX_PROOF
            )
            header = json_object(header_segment)
        except MalformedJOSE as exc:
            raise InvalidDPoPProofError("The DPoP proof is malformed") from exc
        if header.get("typ") != "dpop+jwt":
            raise InvalidDPoPProofError("The DPoP proof is not typed dpop+jwt")
        if header.get("alg") not in self.algorithms:
            raise InvalidDPoPProofError("The DPoP proof algorithm is not accepted")
        if "crit" in header:
            raise InvalidDPoPProofError("The DPoP proof uses unsupported header parameters")
        key, thumbprint = self._key(header.get("jwk"))
        model = self._models[header["alg"]]
        try:
            model.check_key(key)
            valid = model.verify(signing_input, signature, key)
        except (JoseError, ValueError, TypeError):
            valid = False
        if not valid:
            raise InvalidDPoPProofError("The DPoP proof signature is invalid")
        try:
            claims = json_object(payload_segment)
        except MalformedJOSE as exc:
            raise InvalidDPoPProofError("The DPoP proof is malformed") from exc
        self._check_claims(claims, method=method, url=url, access_token=access_token)
        if self.nonces and not self._nonce_ok(claims.get("nonce")):
            raise UseDPoPNonceError(self.current_nonce())
        # RFC 9449 §11.1: a proof is used once; its jti is remembered for the whole iat window.
        try:
            first_use = await self._replays.hit(self._once, "dpop-jti", thumbprint, claims["jti"])
        except STORAGE_ERRORS as exc:
            # Fail closed: without the store, a replay could not be told from a first use.
            raise AuthorizationServerUnavailableError(
                "The DPoP replay check is unavailable", detail=f"replay store: {type(exc).__name__}: {exc}"[:200]
            ) from None
        if not first_use:
            raise InvalidDPoPProofError("The DPoP proof was already used", detail="jti replayed")
        return thumbprint

    def _key(self, jwk: object) -> tuple[Key, str]:
        """The proof's key and its RFC 7638 thumbprint; a client signs every proof with the same
        key, so both are computed once per key (bounded)."""
        if not isinstance(jwk, dict):
            raise InvalidDPoPProofError("The DPoP proof key is missing or not a public key")
        try:
            cache_key = json.dumps(jwk, sort_keys=True)
        except (TypeError, ValueError) as exc:
            raise InvalidDPoPProofError("The DPoP proof key is malformed") from exc
        known = self._keys.get(cache_key)
        if known is None:
            key = _public_key(jwk)
            known = (key, key.thumbprint())
            if len(self._keys) >= 1024:
                self._keys.clear()
            self._keys[cache_key] = known
        return known

    def _check_claims(self, claims: dict[str, Any], *, method: str, url: str, access_token: str | None) -> None:
        jti, htm, htu, iat, ath = (claims.get(n) for n in ("jti", "htm", "htu", "iat", "ath"))
        if not (isinstance(jti, str) and 0 < len(jti) <= 256) or not isinstance(htm, str) or not isinstance(htu, str):
            raise InvalidDPoPProofError("The DPoP proof lacks a required claim")
        if not is_numeric_date(iat):
            raise InvalidDPoPProofError("The DPoP proof lacks a required claim")
        if htm != method:
            raise InvalidDPoPProofError("The DPoP proof is for another HTTP method", detail=f"htm {htm!r}")
        try:
            same_url = normalized_htu(htu) == normalized_htu(url)
        except ValueError:
            same_url = False
        if not same_url:
            raise InvalidDPoPProofError("The DPoP proof is for another URL", detail=f"htu {htu[:200]!r}, not {url!r}")
        now = time.time()
        if iat > now + self.leeway or iat < now - self.max_age:
            raise InvalidDPoPProofError(
                "The DPoP proof is too old or from the future", detail=f"iat {now - iat:.0f} s ago"
            )
        if access_token is None:
            return
        expected = base64.urlsafe_b64encode(hashlib.sha256(access_token.encode("ascii")).digest()).rstrip(b"=")
        if not isinstance(ath, str) or not hmac.compare_digest(ath.encode("ascii", "replace"), expected):
            raise InvalidDPoPProofError("The DPoP proof is not for this access token")


def _public_key(jwk: object) -> Key:
    """RFC 9449 §4.2: the proof's own public key, asymmetric, with no private members."""
    if not isinstance(jwk, dict) or _PRIVATE_MEMBERS & jwk.keys():
        raise InvalidDPoPProofError("The DPoP proof key is missing or not a public key")
    key_class = _KEY_CLASSES.get(str(jwk.get("kty")))
    if key_class is None:
        raise InvalidDPoPProofError("The DPoP proof key is not an asymmetric key")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return key_class.import_key(dict(jwk))
    except KEY_IMPORT_ERRORS as exc:
        raise InvalidDPoPProofError("The DPoP proof key is malformed") from exc
