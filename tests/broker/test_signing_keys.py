"""The broker's signing keys on both storages (two replicas): one key made however many replicas
start at once, rotation published ahead and kept behind, a replica that has not seen the
rotation still validating the new key's tokens, and keys sealed with a retired secret dropped."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

import pytest
from joserfc import jwt

from mcp_auth_middleware.broker import signing_keys
from mcp_auth_middleware.broker.sealing import Sealer
from mcp_auth_middleware.broker.signing_keys import SigningKeys
from mcp_auth_middleware.broker.storage import Records
from mcp_auth_middleware.errors import InvalidTokenError
from mcp_auth_middleware.validators.jwt import JWTValidator

SEALER = Sealer(["k" * 40])
HOUR, DAY = 3600.0, 86400.0


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    now = [time.time()]
    monkeypatch.setattr(signing_keys, "time", SimpleNamespace(time=lambda: now[0], monotonic=time.monotonic))
    return now


def kids(jwks: dict[str, list[dict[str, str]]]) -> list[str]:
    return [key["kid"] for key in jwks["keys"]]


async def test_replicas_starting_together_make_one_key(two_replicas: tuple[Records, Records]) -> None:
    one, two = (SigningKeys(records, SEALER) for records in two_replicas)
    first, second = await asyncio.gather(one.signing_key(), two.signing_key())
    assert first.kid == second.kid
    published = await one.jwks()
    assert kids(published) == [first.kid]
    assert all("d" not in key and key["alg"] == "ES256" and key["use"] == "sig" for key in published["keys"])


async def test_a_new_key_is_published_ahead_signs_later_and_the_old_one_stays_behind(
    two_replicas: tuple[Records, Records], clock: list[float]
) -> None:
    keys = SigningKeys(two_replicas[0], SEALER, rotate_every=DAY, ahead=HOUR, behind=2 * HOUR, reload_every=0)
    old = await keys.signing_key()
    clock[0] += DAY  # due: a new key, published, not yet signing
    assert (await keys.signing_key()).kid == old.kid
    new_kid = kids(await keys.jwks())[0]
    assert kids(await keys.jwks()) == [new_kid, old.kid]
    clock[0] += HOUR  # published an hour: it signs; the old one is still listed for its tokens
    assert (await keys.signing_key()).kid == new_kid
    assert kids(await keys.jwks()) == [new_kid, old.kid]
    clock[0] += 2 * HOUR + 1  # behind elapsed: the old one is gone
    assert kids(await keys.jwks()) == [new_kid]


async def test_a_replica_that_missed_the_rotation_validates_the_new_keys_tokens(
    two_replicas: tuple[Records, Records], clock: list[float]
) -> None:
    signer = SigningKeys(two_replicas[0], SEALER, rotate_every=DAY, ahead=0, reload_every=HOUR)
    reader = SigningKeys(two_replicas[1], SEALER, rotate_every=7 * DAY, ahead=0, reload_every=10 * DAY)
    validator = JWTValidator(issuer="https://b", key_source=reader, algorithms=["ES256"]).for_resource("https://r")
    await reader.jwks()  # cached: the first key only
    clock[0] += DAY
    key = await signer.signing_key()  # the signer rotated; the reader's copy is still fresh for it
    now = int(time.time())  # the validator reads the real clock
    claims = {"iss": "https://b", "aud": "https://r", "exp": now + 600, "iat": now, "sub": "u", "scope": "mcp"}
    token = jwt.encode({"alg": "ES256", "kid": key.kid}, claims, key)
    info = await validator.validate(token)  # an unknown kid: the reader reads the records again
    assert info.sub == "u"
    forged = jwt.encode({"alg": "ES256", "kid": "made-up"}, claims, key)
    reads = 0
    update = reader.records.update

    async def counted(*args: object, **kwargs: object) -> object:
        nonlocal reads
        reads += 1
        return await update(*args, **kwargs)  # type: ignore[arg-type]

    reader.records.update = counted  # type: ignore[method-assign]
    for _ in range(20):
        with pytest.raises(InvalidTokenError):
            await validator.validate(forged)
    assert reads <= 1  # made-up kids: at most one read per cooldown


async def test_keys_sealed_with_a_retired_secret_are_replaced(two_replicas: tuple[Records, Records]) -> None:
    before = await SigningKeys(two_replicas[0], Sealer(["old" * 14])).signing_key()
    after = SigningKeys(two_replicas[1], Sealer(["new" * 14]))
    key = await after.signing_key()
    assert key.kid != before.kid and kids(await after.jwks()) == [key.kid]


def test_rotation_settings_that_cannot_work_are_refused() -> None:
    with pytest.raises(ValueError, match="rotate"):
        SigningKeys(None, SEALER, rotate_every=HOUR, ahead=HOUR)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="rotate"):
        SigningKeys(None, SEALER, behind=60)  # type: ignore[arg-type]
