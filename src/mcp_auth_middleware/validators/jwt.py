"""Local validation of JWT access tokens (RFC 9068, OAuth 2.1 §5.2, RFC 8707 §2) on joserfc."""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Awaitable, Callable, Iterable, Mapping
from functools import partial
from typing import Any, Literal, NoReturn

import httpx2
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwa import JWSAlgModel, RSAAlgorithm, RSAPSSAlgorithm
from joserfc.jwk import Key

from ..auth_info import AuthInfo
from ..errors import ConfigurationError, InvalidTokenError, mismatch_hint, shown
from ..jose import MalformedJOSE, compact_parts, json_object
from ..providers import audience_advice, encrypted_advice, issuer_advice, missing_claims_advice, signature_advice
from ..values import word_list
from .base import CachingValidator
from .claims import (
    DEFAULT_CLIENT_ID_CLAIMS,
    DEFAULT_SCOPE_CLAIMS,
    audience_matches,
    canonical_audiences,
    is_numeric_date,
    is_sender_constrained,
    to_auth_info,
)
from .jwks import JWKSKeys, KeySource, RefetchableKeySource, StaticKeys

logger = logging.getLogger("mcp_auth_middleware")

__all__ = ["DEFAULT_ALGORITHMS", "MAX_TOKEN_LENGTH", "JWTValidator", "encrypted_token_error"]

#: Longer tokens are malformed (the default of `max_token_length`).
MAX_TOKEN_LENGTH = 16 * 1024

#: Asymmetric algorithms only: `none` and HMAC are never accepted.
DEFAULT_ALGORITHMS: tuple[str, ...] = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
    "Ed25519",
)
_KEY_TYPES = {"RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP"}
_AT_JWT = frozenset({"at+jwt", "application/at+jwt"})
#: What the header `typ` of an access token may say by default: RFC 9068's type, plain JWT
#: (RFC 7519 §5.1, what many identity providers send), or nothing. Any other type names
#: another kind of JWT (`secevent+jwt`, `logout+jwt`, `dpop+jwt`, ...), which is never an
#: access token (RFC 8725 §3.11, RFC 9068 §4).
_ACCESS_TOKEN_TYPES = _AT_JWT | {"jwt", "application/jwt"}


def _split_compact(token: str, max_length: int, issuer: str | None) -> tuple[bytes, bytes, bytes, bytes]:
    """Header segment, signing input, payload segment and signature of an access token."""
    raw = token.encode("ascii", "replace")
    try:
        return compact_parts(raw, max_length)
    except MalformedJOSE as exc:
        raise encrypted_token_error(raw, max_length, issuer) or InvalidTokenError(
            "The access token is malformed"
        ) from exc


def encrypted_token_error(raw: bytes, max_length: int, issuer: str | None) -> InvalidTokenError | None:
    """The denial of an encrypted token (a JWE, RFC 7516 §7.1: five segments, a header with
    `enc`) where a signed one was expected, with its provider's fix; None for anything else."""
    if raw.count(b".") != 4 or len(raw) > max_length:
        return None
    try:
        header = json_object(raw.split(b".", 1)[0])
    except MalformedJOSE:
        return None
    if "enc" not in header:
        return None
    return InvalidTokenError(
        "The access token is encrypted, not signed",
        detail=f"a JWE (alg {shown(header.get('alg'))}, enc {shown(header.get('enc'))})"
        f"{encrypted_advice(header, issuer)}",
        mismatch=True,
        guess=False,
    )


def _json_segment(segment: bytes) -> dict[str, Any]:
    try:
        return json_object(segment)
    except MalformedJOSE as exc:
        raise InvalidTokenError("The access token is malformed") from exc


#: A signature check bound to one key: (signing input, signature) -> valid.
_Verify = Callable[[bytes, bytes], bool]


def _verifier(model: JWSAlgModel, key: Key) -> _Verify:
    """The check of `model`'s signatures with `key`, after joserfc's key checks (type, curve,
    `use`, `alg`, `key_ops`), which hold for every token and so are made here, once.

    joserfc's RSA models repeat the `key_ops` check and build the padding and hash objects
    on every verify, a few µs a new token; for RSA this calls `cryptography` as those models
    do, with what they compute made once. Other algorithms go through the model.
    """
    model.check_key(key)
    public = key.get_op_key("verify")
    if not (isinstance(model, RSAAlgorithm | RSAPSSAlgorithm) and isinstance(public, RSAPublicKey)):
        return partial(_model_verify, model, key)
    pad, hash_alg = model.padding, model.hash_alg()

    def verify(signing_input: bytes, signature: bytes) -> bool:
        try:
            public.verify(signature, signing_input, pad, hash_alg)
        except InvalidSignature:
            return False
        return True

    return verify


def _model_verify(model: JWSAlgModel, key: Key, signing_input: bytes, signature: bytes) -> bool:
    try:
        return model.verify(signing_input, signature, key)
    except (JoseError, ValueError, TypeError):
        return False  # a malformed signature (wrong length for the curve, say) is not a valid one


class JWTValidator(CachingValidator):
    """Verifies JWT access tokens with keys from `jwks_uri` or static `keys`.

    A verified token is cached (key: SHA-256 of the token, bounded LRU, never past `exp`),
    so a repeated token costs a hash and a dict lookup.
    """

    def __init__(
        self,
        *,
        issuer: str,
        audience: str | Iterable[str] | Literal[False] | None = None,
        jwks_uri: str | None = None,
        keys: Any = None,
        algorithms: str | Iterable[str] = DEFAULT_ALGORITHMS,
        leeway: int = 30,
        require_at_jwt: bool = False,
        scope_claims: str | Iterable[str] = DEFAULT_SCOPE_CLAIMS,
        client_id_claims: str | Iterable[str] = DEFAULT_CLIENT_ID_CLAIMS,
        cache_size: int = 10_000,
        max_token_length: int = MAX_TOKEN_LENGTH,
        http_client: httpx2.AsyncClient | None = None,
        jwks_timeout: float = 5.0,
        allow_http: bool = False,
        resolve_jwks_uri: Callable[[], Awaitable[str]] | None = None,
        key_source: KeySource | None = None,
        allowed_clients: str | Iterable[str] | None = None,
        required_claims: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(cache_size)
        if not issuer:
            raise ValueError("issuer is required: tokens are matched against it exactly (RFC 9068 §4)")
        self.issuer = issuer
        self.algorithms = tuple(word_list(algorithms))
        bad = [a for a in self.algorithms if a[:2] not in _KEY_TYPES]
        if bad or not self.algorithms:
            raise ValueError(f"only asymmetric algorithms are allowed, not {bad or 'none'}")
        if not 0 <= leeway <= 60:
            raise ValueError("leeway must be between 0 and 60 seconds")
        self.leeway = leeway
        self.require_at_jwt = require_at_jwt
        self._accepted_types = _AT_JWT if require_at_jwt else _ACCESS_TOKEN_TYPES
        self.scope_claims = tuple(word_list(scope_claims))
        self.client_id_claims = tuple(word_list(client_id_claims))
        self.max_token_length = max_token_length
        # The clients whose tokens are accepted (any, by default), and claims that must have a
        # value (Cognito's token_use): checks some providers need besides or instead of aud.
        self.allowed_clients = frozenset(word_list(allowed_clients)) if allowed_clients is not None else None
        self.required_claims = dict(required_claims or {})
        self.audience_off = audience is False
        if audience is False:
            if not self.allowed_clients:
                raise ValueError("audience=False needs allowed_clients: without aud, the client is what is checked")
            self.audience = frozenset()
            logger.warning(
                "audience binding is off for %s (audience=False): a token of %s passes whatever resource it was "
                "issued for (MCP authorization, Token Audience Binding); only for providers whose access tokens "
                "carry no aud",
                issuer,
                ", ".join(sorted(self.allowed_clients)),
            )
        elif audience is not None:
            self.audience = canonical_audiences(audience)
        if key_source is not None:
            self.keys: KeySource = key_source
        elif keys is not None:
            self.keys = StaticKeys(keys)
        elif jwks_uri is not None or resolve_jwks_uri is not None:
            self.keys = JWKSKeys(
                jwks_uri,
                resolve_uri=resolve_jwks_uri,
                http_client=http_client,
                timeout=jwks_timeout,
                allow_http=allow_http,
            )
        else:
            raise ValueError("JWTValidator needs `jwks_uri` or `keys`")
        # joserfc's algorithm models do the cryptography; looked up once, not per request.
        jws_registry = jws.JWSRegistry(algorithms=self.algorithms, strict_check_header=False)
        with warnings.catch_warnings():  # "EdDSA is deprecated via RFC 9864": IdPs still use it
            warnings.simplefilter("ignore")
            self._algorithms: dict[str, JWSAlgModel] = {name: jws_registry.get_alg(name) for name in self.algorithms}
        # iss, exp and aud are always required; strict RFC 9068 mode requires these too.
        self._extra_required = ("sub", "client_id", "iat", "jti") if require_at_jwt else ()
        self._headers: dict[bytes, tuple[JWSAlgModel, str | None]] = {}
        self._verifiers: dict[tuple[int, str], tuple[Key, _Verify]] = {}

    async def check(self) -> None:
        """The audience is set and the keys are usable (fetched now when they come from a JWKS)."""
        if self.audience is None:
            raise ConfigurationError("this JWTValidator has no audience: pass audience=, or use it in a middleware")
        for key_type in ("RSA", "EC", "OKP"):
            if await self.keys.keys_for(None, key_type):
                return
        raise ConfigurationError("no verification key at all: the key set is empty")

    kind = "jwt"

    @property
    def issuers(self) -> tuple[str, ...]:
        return (self.issuer,)

    def checks_locally(self, token: str) -> bool:
        """Always: keys are configured or cached (refetches are rate-limited and shared)."""
        return True

    async def validate_new(self, token: str, key: bytes) -> AuthInfo:
        """Verify a token the cache does not hold, and remember it under `key` (its token_key)."""
        self.cache_misses += 1
        if self.audience is None:
            raise ConfigurationError("this JWTValidator has no audience: pass audience=, or use it in a middleware")
        header_segment, signing_input, payload_segment, signature = _split_compact(
            token, self.max_token_length, self.issuer
        )
        model, kid = self._header(header_segment)
        arrived = time.monotonic()
        candidates = await self.keys.keys_for(kid, model.key_type)
        if not self._signature_ok(model, signing_input, signature, candidates[:4]):
            await self._verify_after_refetch(model, kid, signing_input, signature, bool(candidates), arrived)

        claims = _json_segment(payload_segment)
        self._check_claims(claims)
        info = to_auth_info(claims, scope_claims=self.scope_claims, client_id_claims=self.client_id_claims)
        if self.allowed_clients is not None and info.client_id not in self.allowed_clients:
            raise InvalidTokenError(
                "The access token was issued to a client this resource does not accept",
                detail=f"client {shown(info.client_id)} is not in allowed_clients",
                mismatch=True,
                guess=False,
            )
        self.remember(key, info, claims["exp"])  # an entry never outlives the token (RFC 7662 §4)
        return info

    async def _verify_after_refetch(
        self, model: JWSAlgModel, kid: str | None, signing_input: bytes, signature: bytes, known: bool, arrived: float
    ) -> None:
        """A known key id whose signature does not verify: the authorization server may have
        replaced the key under the same id, so look once more (rate-limited, shared) before
        refusing. An unknown id was already looked up again by the key source."""
        if known and isinstance(self.keys, RefetchableKeySource):
            await self.keys.refetch(arrived)
            fresh = await self.keys.keys_for(kid, model.key_type)
            if self._signature_ok(model, signing_input, signature, fresh[:4]):
                return
        where = "the JWKS, also after fetching it again" if isinstance(self.keys, RefetchableKeySource) else "the keys"
        if known:
            detail = f"key id {shown(kid)} is in {where}, but the signature does not verify with it"
        else:
            detail = f"no {model.key_type} key with key id {shown(kid)} in {where}"
        header, _, rest = signing_input.partition(b".")
        detail += _signature_advice(header, rest, known)  # a provider's reason (Graph's tokens), if any
        # An unknown key id is what a rotation the JWKS does not show yet looks like: WARNING.
        raise InvalidTokenError("The access token signature is invalid", detail=detail, mismatch=not known)

    def _signature_ok(self, model: JWSAlgModel, signing_input: bytes, signature: bytes, candidates: list[Key]) -> bool:
        verifiers = self._verifiers
        for key in candidates:
            # Checked once per key and algorithm; the key object is kept, so its id is not reused.
            entry = verifiers.get((id(key), model.name))
            if entry is None or entry[0] is not key:
                try:
                    entry = (key, _verifier(model, key))
                except (JoseError, ValueError, TypeError):
                    continue  # this key does not fit the algorithm: try the next one
                if len(verifiers) >= 64:
                    verifiers.clear()
                verifiers[(id(key), model.name)] = entry
            if entry[1](signing_input, signature):
                return True
        return False

    def _header(self, segment: bytes) -> tuple[JWSAlgModel, str | None]:
        """The algorithm and `kid` of a JOSE header, checked once: an issuer's tokens share a
        handful of headers (an unacceptable one raises every time, and is not kept)."""
        checked = self._headers.get(segment)
        if checked is None:
            checked = self._check_header(_json_segment(segment))
            if len(self._headers) >= 64:  # bounded against floods of distinct headers
                self._headers.clear()
            self._headers[segment] = checked
        return checked

    def _check_header(self, header: dict[str, Any]) -> tuple[JWSAlgModel, str | None]:
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self._algorithms:
            raise InvalidTokenError("The access token algorithm is not accepted")
        if "crit" in header or "b64" in header:
            raise InvalidTokenError("The access token uses unsupported header parameters")
        typ = header.get("typ")
        if (typ is not None or self.require_at_jwt) and not (
            isinstance(typ, str) and typ.lower() in self._accepted_types
        ):
            # Explicit typing (RFC 8725 §3.11): a JWT of another type is not an access token.
            raise InvalidTokenError("The JWT type (typ) is not an access token type")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise InvalidTokenError("The access token is malformed")
        # Keys come only from our configuration or jwks_uri, never from jku/x5u/x5c/jwk headers.
        return self._algorithms[alg], kid

    def _check_claims(self, claims: dict[str, Any]) -> None:
        """RFC 9068 §4 and RFC 7519 §4.1. joserfc's JWTClaimsRegistry checks the same rules,
        but through one call per claim, each reading the clock: about 8 µs a token, a fifth of
        the budget for a new one. These are its rules, in one pass with one clock reading.

        The signature has verified: the authorization server issued this token, so a failure
        here is a client's or an operator's mistake, never a guess (`guess=False`).
        """
        get = claims.get
        iss, exp, aud = get("iss"), get("exp"), get("aud")
        if (
            iss is None
            or exp is None
            or (aud is None and not self.audience_off)
            or (self._extra_required and any(get(name) is None for name in self._extra_required))
        ):
            missing = [n for n in ("iss", "exp", "aud", *self._extra_required) if get(n) is None]
            if self.audience_off:
                missing = [n for n in missing if n != "aud"]
            raise InvalidTokenError(
                "The access token lacks a required claim",
                detail=f"claims {', '.join(missing)} missing{missing_claims_advice(claims, missing)}",
                mismatch=True,
                guess=False,
            )
        if iss != self.issuer:  # exact match (RFC 9068 §4)
            raise InvalidTokenError(
                "The access token issuer is not trusted",
                detail=f"issuer {shown(iss)} is not {self.issuer!r}"
                f"{mismatch_hint(self.issuer, iss) or issuer_advice(self.issuer, iss, claims)}",
                mismatch=True,
                guess=False,
            )
        for name, wanted in self.required_claims.items():
            if get(name) != wanted:
                raise InvalidTokenError(
                    "The access token is not of the kind this resource accepts",
                    detail=f"claim {name} is {shown(get(name))}, not {wanted!r}"
                    + ("; an ID token, not an access token" if name == "token_use" and get(name) == "id" else ""),
                    mismatch=True,
                    guess=False,
                )
        if not is_numeric_date(exp):
            _invalid_claim("exp")
        now = time.time()
        if exp <= now - self.leeway:
            raise InvalidTokenError(
                "The access token has expired",
                detail=f"expired at {_when(exp)}, {now - exp:.0f} s ago (leeway {self.leeway} s)",
                guess=False,
            )
        for name in ("nbf", "iat"):  # not yet valid, or issued in the future
            value = get(name)
            if value is not None and (not is_numeric_date(value) or value > now + self.leeway):
                _invalid_claim(name)
        for name in ("sub", "jti"):
            if (value := get(name)) is not None and type(value) is not str:
                _invalid_claim(name)
        if self.audience_off:
            pass  # allowed_clients is checked instead (see __init__)
        elif type(aud) is not str and not (type(aud) is list and all(type(a) is str for a in aud)):
            _invalid_claim("aud")
        # RFC 8707 §2: aud must name this resource; an ID token (aud = a client id) fails here.
        elif not audience_matches(aud, self.audience):  # type: ignore[arg-type]
            raise InvalidTokenError(
                "The access token was not issued for this resource",
                detail=f"audience {shown(aud)} does not include {' or '.join(sorted(self.audience or ()))}"
                f"{audience_advice(claims, self.audience or ())}",
                mismatch=True,
                guess=False,
            )
        if "cnf" in claims and not self.accept_bound and is_sender_constrained(claims):
            # RFC 9449 §7.2, RFC 8705 §3: a bound token is only good with its key's proof.
            raise InvalidTokenError(
                "A sender-constrained token cannot be used as a bearer token",
                detail="the token has a cnf claim but came as a Bearer token",
                guess=False,
            )


def _signature_advice(header: bytes, payload: bytes, key_known: bool) -> str:
    """A provider's explanation of a signature that does not verify (providers.py), from the
    unverified token: for the log line only."""
    try:
        return signature_advice(_json_segment(header), _json_segment(payload), key_known=key_known)
    except InvalidTokenError:
        return ""


def _invalid_claim(name: str) -> NoReturn:
    raise InvalidTokenError(
        "The access token has an invalid claim", detail=f"claim {name} is malformed or in the future", guess=False
    )


def _when(epoch: float) -> str:
    """A date for a log line; an `exp` beyond what the platform's clock holds is shown as it is."""
    try:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
    except (OverflowError, OSError, ValueError):
        return f"{epoch:.0f} (not a date)"
