"""JWTValidator: strict validation (RFC 9068 §2, §4; RFC 8707 §2), claims mapping, the verified-token cache."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import pytest
from joserfc import jws
from joserfc.errors import SecurityWarning
from joserfc.jwk import ECKey, OKPKey, RSAKey

from mcp_auth_middleware import AuthorizationServerUnavailableError, ConfigurationError, InvalidTokenError, JWTValidator
from mcp_auth_middleware.testing import LocalIssuer

ISS = "https://auth.example.com"
AUD = "https://mcp.example.com/mcp"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sign_raw(header: dict[str, Any], payload: bytes, key: Any) -> str:
    """Sign arbitrary header and payload bytes, including what joserfc itself refuses to produce."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(payload)}"
    signature = jws.JWSRegistry.algorithms[header["alg"]].sign(signing_input.encode(), key)
    return f"{signing_input}.{b64(signature)}"


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {"iss": ISS, "aud": AUD, "sub": "alice", "client_id": "app", "exp": now + 300, "iat": now, "jti": "j1"}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def sign(key: Any, payload: dict[str, Any], **header: Any) -> str:
    head = {"alg": "RS256", "kid": key.kid, "typ": "at+jwt", **header}
    return sign_raw(head, json.dumps(payload).encode(), key)


@pytest.fixture(scope="module")
def rsa() -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": "rsa-1"})


@pytest.fixture
def validator(rsa: RSAKey) -> JWTValidator:
    return JWTValidator(issuer=ISS, audience=AUD, keys={"keys": [rsa.as_dict(private=False)]})


async def test_valid_token_accepted(validator: JWTValidator, rsa: RSAKey) -> None:
    info = await validator.validate(sign(rsa, claims(scope="mcp read")))
    assert (info.sub, info.client_id, info.scopes, info.issuer) == ("alice", "app", frozenset({"mcp", "read"}), ISS)
    assert info.audience == (AUD,)
    assert info.claims["jti"] == "j1"


async def rejects(validator: JWTValidator, token: str, reason: str | None = None) -> None:
    with pytest.raises(InvalidTokenError, match=reason):
        await validator.validate(token)


async def test_tampered_payload_rejected(validator: JWTValidator, rsa: RSAKey) -> None:
    header, _, signature = sign(rsa, claims()).split(".")
    forged = b64(json.dumps(claims(sub="mallory")).encode())
    await rejects(validator, f"{header}.{forged}.{signature}", "signature")


@pytest.mark.parametrize("payload", [b'{"exp": NaN}', b'{"exp": Infinity}', b'{"exp": -Infinity}'])
async def test_non_finite_numbers_are_malformed(validator: JWTValidator, rsa: RSAKey, payload: bytes) -> None:
    # Python's json reads NaN and Infinity; a NaN exp would never expire. JSON has neither.
    body = json.dumps(claims(exp=None))[:-1].encode() + b", " + payload[1:]
    await rejects(validator, sign_raw({"alg": "RS256", "kid": rsa.kid}, body, rsa), "malformed")


@pytest.mark.parametrize("swap", [("-", "+"), ("_", "/")])
async def test_standard_base64_characters_are_not_base64url(
    validator: JWTValidator, rsa: RSAKey, swap: tuple[str, str]
) -> None:
    """RFC 7515 §2: base64url only. The same signature spelt with `+` or `/` is another token."""
    for _ in range(20):  # a signature without the character to swap is possible; try a few
        token = sign(rsa, claims(jti=f"j{_}"))
        head, _, signature = token.rpartition(".")
        if swap[0] in signature:
            break
    assert swap[0] in signature
    assert await validator.validate(token)
    await rejects(validator, f"{head}.{signature.replace(swap[0], swap[1])}", "malformed")
    await rejects(validator, f"{head}.{signature}=", "malformed")


async def test_wrong_key_rejected(validator: JWTValidator) -> None:
    other = RSAKey.generate_key(2048, parameters={"kid": "rsa-1"})
    await rejects(validator, sign(other, claims()), "signature")


async def test_alg_none_rejected(validator: JWTValidator) -> None:
    header = b64(json.dumps({"alg": "none", "typ": "at+jwt"}).encode())
    await rejects(validator, f"{header}.{b64(json.dumps(claims()).encode())}.", "algorithm")


async def test_hmac_with_public_key_as_secret_rejected(validator: JWTValidator, rsa: RSAKey) -> None:
    """The classic algorithm-confusion attack: HS256 keyed with the RSA public key."""
    signing_input = f"{b64(json.dumps({'alg': 'HS256', 'kid': 'rsa-1'}).encode())}.{b64(json.dumps(claims()).encode())}"
    mac = hmac.new(rsa.as_pem(private=False), signing_input.encode(), hashlib.sha256).digest()
    await rejects(validator, f"{signing_input}.{b64(mac)}", "algorithm")


def test_hmac_algorithms_cannot_be_configured(rsa: RSAKey) -> None:
    with pytest.raises(ValueError, match="asymmetric"):
        JWTValidator(issuer=ISS, audience=AUD, keys=rsa.as_dict(private=False), algorithms=["HS256"])


async def test_algorithm_allowlist(rsa: RSAKey) -> None:
    only_ps = JWTValidator(issuer=ISS, audience=AUD, keys=rsa.as_dict(private=False), algorithms=["PS256"])
    await rejects(only_ps, sign(rsa, claims()), "algorithm")
    assert (await only_ps.validate(sign(rsa, claims(), alg="PS256"))).sub == "alice"


async def test_key_type_must_fit_alg(rsa: RSAKey) -> None:
    ec = ECKey.generate_key("P-256", parameters={"kid": "rsa-1"})
    validator = JWTValidator(issuer=ISS, audience=AUD, keys={"keys": [ec.as_dict(private=False)]})
    await rejects(validator, sign(rsa, claims()), "signature")


@pytest.mark.parametrize("header", ["jwk", "jku", "x5u"])
async def test_embedded_or_remote_key_headers_never_trusted(validator: JWTValidator, header: str) -> None:
    attacker = RSAKey.generate_key(2048, parameters={"kid": "rsa-1"})
    value: Any = attacker.as_dict(private=False) if header == "jwk" else "https://evil.example/jwks"
    await rejects(validator, sign(attacker, claims(), **{header: value}))


async def test_unknown_crit_rejected(validator: JWTValidator, rsa: RSAKey) -> None:
    await rejects(validator, sign(rsa, claims(), crit=["exp"], exp=1), "unsupported header")


async def test_b64_false_rejected(validator: JWTValidator, rsa: RSAKey) -> None:
    token = sign_raw(
        {"alg": "RS256", "kid": "rsa-1", "b64": False, "crit": ["b64"]}, json.dumps(claims()).encode(), rsa
    )
    await rejects(validator, token)


async def test_issuer_exact_match(validator: JWTValidator, rsa: RSAKey) -> None:
    for iss in ("https://auth.example.com/", "https://AUTH.example.com", "https://evil.example", 7):
        await rejects(validator, sign(rsa, claims(iss=iss)), "issuer|invalid claim")


@pytest.mark.parametrize(
    "aud",
    [
        "https://mcp.example.com/mcp",
        "HTTPS://MCP.EXAMPLE.COM/mcp",
        "https://mcp.example.com:443/mcp",
        "https://mcp.example.com/mcp/",
        ["account", "https://mcp.example.com/mcp"],
    ],
)
async def test_audience_canonical_match(validator: JWTValidator, rsa: RSAKey, aud: Any) -> None:
    assert (await validator.validate(sign(rsa, claims(aud=aud)))).sub == "alice"


@pytest.mark.parametrize(
    "aud",
    [
        "https://mcp.example.com/mcp/extra",
        "https://mcp.example.com/MCP",
        "https://mcp.example.com",
        "https://mcp.example.com/mc",
        "https://mcp.example.com.evil.example/mcp",
        "https://evil@mcp.example.com/mcp",
        "http://mcp.example.com/mcp",
        [],
        7,
        ["https://other.example/mcp"],
    ],
)
async def test_audience_never_a_prefix_or_loose_match(validator: JWTValidator, rsa: RSAKey, aud: Any) -> None:
    await rejects(validator, sign(rsa, claims(aud=aud)))


async def test_several_audiences_configurable(rsa: RSAKey) -> None:
    validator = JWTValidator(issuer=ISS, audience=[AUD, "api://mcp"], keys=rsa.as_dict(private=False))
    assert (await validator.validate(sign(rsa, claims(aud="api://mcp")))).sub == "alice"
    await rejects(validator, sign(rsa, claims(aud="API://mcp")))  # RFC 9728 §3.3: non-URL audiences compare exactly


async def test_id_token_never_passes(validator: JWTValidator, rsa: RSAKey) -> None:
    id_token = sign(rsa, claims(aud="my-spa-client", nonce="n-0S6", at_hash="77QmUPtjPfzWtF2AnpK9RQ"), typ="JWT")
    await rejects(validator, id_token, "not issued for this resource")


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"exp": None}, "required claim"),
        ({"exp": int(time.time()) - 120}, "expired"),
        ({"exp": "soon"}, "invalid claim"),
        ({"exp": True}, "invalid claim"),
        ({"exp": 10**400}, None),
        ({"nbf": int(time.time()) + 600}, "invalid claim"),
        ({"iat": int(time.time()) + 600}, "invalid claim"),
        ({"aud": None}, "required claim"),
        ({"iss": None}, "required claim"),
        ({"sub": 42}, "invalid claim"),
    ],
)
async def test_time_and_type_checks(
    validator: JWTValidator, rsa: RSAKey, overrides: dict[str, Any], reason: str | None
) -> None:
    token = sign(rsa, claims(**overrides))
    if overrides.get("exp") == 10**400:
        # A far-future exp is the AS's choice; it must not crash anything.
        assert (await validator.validate(token)).sub == "alice"
        return
    await rejects(validator, token, reason)


async def test_leeway_applies_to_exp_and_nbf(rsa: RSAKey) -> None:
    validator = JWTValidator(issuer=ISS, audience=AUD, keys=rsa.as_dict(private=False), leeway=30)
    now = int(time.time())
    assert await validator.validate(sign(rsa, claims(nbf=now + 10)))
    await rejects(validator, sign(rsa, claims(nbf=now + 90)))
    with pytest.raises(ValueError, match="leeway"):
        JWTValidator(issuer=ISS, audience=AUD, keys=rsa.as_dict(private=False), leeway=600)


async def test_strict_typ_mode(rsa: RSAKey) -> None:
    strict = JWTValidator(issuer=ISS, audience=AUD, keys=rsa.as_dict(private=False), require_at_jwt=True)
    assert await strict.validate(sign(rsa, claims(), typ="at+jwt"))
    assert await strict.validate(sign(rsa, claims(), typ="application/AT+JWT"))
    await rejects(strict, sign(rsa, claims(), typ="JWT"), "typ")
    await rejects(strict, sign_raw({"alg": "RS256", "kid": rsa.kid}, json.dumps(claims()).encode(), rsa), "typ")
    await rejects(strict, sign(rsa, claims(jti=None), typ="at+jwt"), "required claim")
    lenient = JWTValidator(issuer=ISS, audience=AUD, keys=rsa.as_dict(private=False))
    assert await lenient.validate(sign(rsa, claims(), typ="JWT"))


@pytest.mark.parametrize("typ", ["at+jwt", "application/at+jwt", "AT+JWT", "JWT", "jwt", "application/jwt", None])
async def test_default_accepts_access_token_types_plain_jwt_and_none(rsa: RSAKey, typ: str | None) -> None:
    lenient = JWTValidator(issuer=ISS, audience=AUD, keys=rsa.as_dict(private=False))
    header = {"alg": "RS256", "kid": rsa.kid} | ({"typ": typ} if typ is not None else {})
    assert await lenient.validate(sign_raw(header, json.dumps(claims()).encode(), rsa))


@pytest.mark.parametrize(
    "typ", ["secevent+jwt", "logout+jwt", "dpop+jwt", "token-introspection+jwt", "application/secevent+jwt", "JOSE", 7]
)
async def test_explicitly_typed_foreign_jwts_are_never_access_tokens(rsa: RSAKey, typ: object) -> None:
    # RFC 8725 §3.11 (explicit typing), RFC 9068 §4: correctly signed, right issuer and
    # audience, but declared to be another kind of JWT.
    for require_at_jwt in (False, True):
        validator = JWTValidator(
            issuer=ISS, audience=AUD, keys=rsa.as_dict(private=False), require_at_jwt=require_at_jwt
        )
        await rejects(validator, sign(rsa, claims(), typ=typ), "typ")


async def test_for_resource_binds_a_copy_with_its_own_cache(rsa: RSAKey) -> None:
    shared = JWTValidator(issuer=ISS, keys=rsa.as_dict(private=False))
    first, second = shared.for_resource(AUD), shared.for_resource("https://mcp.example.com/admin")
    token = sign(rsa, claims())
    assert await first.validate(token)
    await rejects(second, token, "not issued for this resource")  # not a hit in first's cache
    with pytest.raises(ConfigurationError):  # the shared validator itself is unchanged: no audience
        await shared.validate(token)
    assert first.keys is shared.keys  # one key source (one JWKS cache) per issuer
    configured = JWTValidator(issuer=ISS, audience=AUD, keys=rsa.as_dict(private=False))
    assert configured.for_resource("https://elsewhere.example/mcp") is configured  # configured audience wins


@pytest.mark.parametrize(
    "token",
    [
        "",
        "abc",
        "a.b",
        "a.b.c.d",
        "a.b.c.d.e",
        "!!!.###.$$$",
        "eyJhbGciOiJSUzI1NiJ9.e30",
        b64(b"not json") + "." + b64(b"{}") + ".sig",
        b64(b"[1,2]") + "." + b64(b"{}") + ".sig",
        b64(json.dumps({"alg": 7}).encode()) + "." + b64(b"{}") + ".sig",
        b64(json.dumps({"alg": "RS256", "kid": ["x"]}).encode()) + "." + b64(b"{}") + ".sig",
        "x" * 20000,
        ("eyJ" + "A" * 5000) + ".e30.sig",
    ],
)
async def test_malformed_tokens_invalid_not_crash(validator: JWTValidator, token: str) -> None:
    await rejects(validator, token)


@pytest.mark.parametrize(
    "payload",
    [
        b'{"iss": "https://auth.example.com", "sub": "a", "sub": "b"}',
        b"[1, 2, 3]",
        b"not json",
        b'"string"',
        b"\xff\xfe",
        b"[" * 5000 + b"]" * 5000,
    ],
)
async def test_malformed_payloads_rejected(validator: JWTValidator, rsa: RSAKey, payload: bytes) -> None:
    token = sign_raw({"alg": "RS256", "kid": "rsa-1"}, payload, rsa)
    await rejects(validator, token)


async def test_duplicate_claims_rejected_even_if_last_value_is_valid(validator: JWTValidator, rsa: RSAKey) -> None:
    body = json.dumps(claims())[:-1] + ', "aud": "https://mcp.example.com/mcp"}'
    await rejects(validator, sign_raw({"alg": "RS256", "kid": "rsa-1"}, body.encode(), rsa), "malformed")


async def test_weak_and_encryption_keys_ignored(rsa: RSAKey) -> None:
    with pytest.warns(SecurityWarning, match="2048"):  # joserfc warns, rightly; we then ignore the key
        weak = RSAKey.import_key(_rsa1024_pem(), parameters={"kid": "weak"})
    enc = {**rsa.as_dict(private=False), "use": "enc", "kid": "enc"}
    keys = {"keys": [weak.as_dict(private=False), enc, {"kty": "unknown", "kid": "x"}, rsa.as_dict(private=False)]}
    validator = JWTValidator(issuer=ISS, audience=AUD, keys=keys)
    await rejects(validator, sign(weak, claims()), "signature")
    enc_signed = sign_raw({"alg": "RS256", "kid": "enc"}, json.dumps(claims()).encode(), rsa)
    await rejects(validator, enc_signed, "signature")
    assert await validator.validate(sign(rsa, claims()))


def _rsa1024_pem() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    private = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    return private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


async def test_static_keys_accept_pem_jwk_and_joserfc_keys(rsa: RSAKey) -> None:
    token = sign(rsa, claims())
    for keys in (rsa.as_pem(private=False).decode(), rsa.as_dict(private=False), rsa, [rsa.as_dict(private=False)]):
        assert (await JWTValidator(issuer=ISS, audience=AUD, keys=keys).validate(token)).sub == "alice"


async def test_ec_and_eddsa_tokens(rsa: RSAKey) -> None:
    ec = ECKey.generate_key("P-256", parameters={"kid": "ec"})
    ed = OKPKey.generate_key("Ed25519", parameters={"kid": "ed"})
    validator = JWTValidator(
        issuer=ISS, audience=AUD, keys={"keys": [ec.as_dict(private=False), ed.as_dict(private=False)]}
    )
    assert await validator.validate(sign(ec, claims(), alg="ES256"))
    assert await validator.validate(sign(ed, claims(), alg="EdDSA"))


async def test_no_keys_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="jwks_uri"):
        JWTValidator(issuer=ISS, audience=AUD)
    with pytest.raises(ValueError, match="no usable"):
        JWTValidator(issuer=ISS, audience=AUD, keys={"keys": []})


# -- The verified-token cache -------------------------------------------------------------


async def test_cache_hit_returns_same_info_without_reverifying(
    validator: JWTValidator, rsa: RSAKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = sign(rsa, claims())
    first = await validator.validate(token)

    async def boom(token: str, key: bytes) -> Any:
        raise AssertionError("verified twice")

    monkeypatch.setattr(validator, "validate_new", boom)
    assert await validator.validate(token) is first


async def test_cache_entry_never_outlives_exp(
    validator: JWTValidator, rsa: RSAKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = sign(rsa, claims(exp=int(time.time()) + 5))
    await validator.validate(token)
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + 40)  # past exp, past the leeway
    await rejects(validator, token, "expired")


async def test_cache_is_bounded(rsa: RSAKey) -> None:
    validator = JWTValidator(issuer=ISS, audience=AUD, keys=rsa.as_dict(private=False), cache_size=3)
    for i in range(10):
        await validator.validate(sign(rsa, claims(jti=f"j{i}")))
    assert len(validator._cache) == 3


async def test_rejections_are_not_cached(validator: JWTValidator, rsa: RSAKey) -> None:
    await rejects(validator, sign(rsa, claims(aud="https://other.example")))
    assert len(validator._cache) == 0


# -- Claims to AuthInfo: tokens shaped like real IdPs' -----------------------------------


IDP_TOKENS: dict[str, tuple[dict[str, Any], dict[str, Any], tuple[str | None, str | None, set[str]]]] = {
    "keycloak": (
        {
            "iss": "https://kc.example.com/realms/mcp",
            "aud": ["https://mcp.example.com/mcp", "account"],
            "typ": "Bearer",
            "azp": "mcp-inspector",
            "sid": "s1",
            "scope": "openid profile mcp:tools email",
            "preferred_username": "alice",
            "realm_access": {"roles": ["user"]},
        },
        {},
        ("f:kc:alice", "mcp-inspector", {"openid", "profile", "mcp:tools", "email"}),
    ),
    "auth0": (
        {
            "iss": "https://tenant.eu.auth0.com/",
            "aud": ["https://mcp.example.com/mcp", "https://tenant.eu.auth0.com/userinfo"],
            "azp": "AbCdEf123",
            "scope": "openid read:tools",
            "permissions": ["read:tools", "write:tools"],
        },
        {"scope_claims": ("scope", "permissions")},
        ("auth0|abc", "AbCdEf123", {"openid", "read:tools", "write:tools"}),
    ),
    "entra_v1": (
        {
            "iss": "https://sts.windows.net/tid/",
            "aud": "api://mcp-server",
            "appid": "11111111-aaaa",
            "scp": "Tools.Read Tools.Write",
            "roles": ["Admin"],
            "ver": "1.0",
            "oid": "oid-1",
        },
        {"scope_claims": ("scp", "roles"), "audience": "api://mcp-server"},
        ("entra-sub", "11111111-aaaa", {"Tools.Read", "Tools.Write", "Admin"}),
    ),
    "entra_v2": (
        {
            "iss": "https://login.microsoftonline.com/tid/v2.0",
            "aud": "22222222-bbbb",
            "azp": "33333333-cccc",
            "scp": "Tools.Read",
            "ver": "2.0",
        },
        {"audience": "22222222-bbbb"},
        ("entra-sub", "33333333-cccc", {"Tools.Read"}),
    ),
    "okta": (
        {
            "iss": "https://dev-1.okta.com/oauth2/default",
            "aud": "https://mcp.example.com/mcp",
            "cid": "0oa1okta",
            "uid": "00u1",
            "scp": ["mcp.read", "mcp.write"],
            "ver": 1,
        },
        {},
        ("alice@example.com", "0oa1okta", {"mcp.read", "mcp.write"}),
    ),
}


@pytest.mark.parametrize("idp", sorted(IDP_TOKENS))
async def test_idp_shaped_tokens_map_to_auth_info(rsa: RSAKey, idp: str) -> None:
    extra, options, (sub, client_id, scopes) = IDP_TOKENS[idp]
    now = int(time.time())
    payload = {"sub": sub, "iat": now, "exp": now + 600, **extra}
    options = {"audience": AUD, **options}
    validator = JWTValidator(issuer=extra["iss"], keys=rsa.as_dict(private=False), **options)
    info = await validator.validate(sign(rsa, payload, typ="JWT"))
    assert (info.sub, info.client_id, set(info.scopes)) == (sub, client_id, scopes)
    assert info.claims == payload
    assert info.expires_at == now + 600


async def test_local_issuer_tokens_validate() -> None:
    issuer = LocalIssuer(ISS)
    token = issuer.mint_token(audience=AUD, scopes=["a", "b"])
    assert (await issuer.validator(audience=AUD).validate(token)).scopes == {"a", "b"}


async def test_jwks_down_before_first_fetch_is_503_not_401() -> None:
    validator = JWTValidator(issuer=ISS, audience=AUD, jwks_uri="http://127.0.0.1:9/jwks", jwks_timeout=0.5)
    issuer = LocalIssuer(ISS)
    with pytest.raises(AuthorizationServerUnavailableError):
        await validator.validate(issuer.mint_token(audience=AUD))


def test_jwks_uri_must_be_https_except_loopback() -> None:
    with pytest.raises(ValueError, match="is plain http to a host that is not loopback"):
        JWTValidator(issuer=ISS, audience=AUD, jwks_uri="http://auth.example.com/jwks")
    JWTValidator(issuer=ISS, audience=AUD, jwks_uri="http://127.0.0.1:8080/jwks")
    JWTValidator(issuer=ISS, audience=AUD, jwks_uri="http://auth.internal/jwks", allow_http=True)


@pytest.mark.parametrize(
    "cnf",
    [
        {"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"},
        {"x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"},
    ],
)
async def test_sender_constrained_token_refused_as_bearer(
    validator: JWTValidator, rsa: RSAKey, cnf: dict[str, str]
) -> None:
    await rejects(validator, sign(rsa, claims(cnf=cnf)), "bearer token")


@pytest.mark.parametrize("signature", ["", "AAAA", "cut", "longer", "A" * 2000])
@pytest.mark.parametrize("alg", ["RS256", "PS256", "ES256"])
async def test_signature_of_the_wrong_length_is_an_invalid_signature(signature: str, alg: str) -> None:
    """Each key's check is prepared once (for RSA, cryptography called directly): a signature
    of any other length is a 401 like any bad signature, never another exception."""
    key = ECKey.generate_key("P-256", parameters={"kid": "ec"}) if alg == "ES256" else None
    issuer = LocalIssuer("https://as", key=key, algorithm=alg)
    validator = issuer.validator().for_resource("https://r")
    header, payload, good = issuer.mint_token(audience="https://r").split(".")
    forged = {"cut": good[:-10], "longer": good + "AAAA"}.get(signature, signature)
    with pytest.raises(InvalidTokenError, match="signature is invalid"):
        await validator.validate(f"{header}.{payload}.{forged}")
    assert (await validator.validate(f"{header}.{payload}.{good}")).audience == ("https://r",)
