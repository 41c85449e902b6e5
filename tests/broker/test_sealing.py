"""Sealed values: open only with a configured secret, at their own place, unaltered; secrets rotate."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest

from mcp_auth_middleware.broker.sealing import Sealer, SealError

NEW, OLD = "n" * 43, "o" * 43


def test_a_sealed_value_opens_at_its_place_only() -> None:
    sealer = Sealer([NEW])
    sealed = sealer.seal({"access_token": "provider-token", "n": 1}, "grant:alice")
    assert "provider-token" not in sealed
    assert sealer.open(sealed, "grant:alice") == {"access_token": "provider-token", "n": 1}
    with pytest.raises(SealError, match="another place"):
        sealer.open(sealed, "grant:mallory")  # copied into another record


def test_secrets_rotate_newest_first() -> None:
    old_sealed = Sealer([OLD]).seal("v", "k")
    rotated = Sealer([NEW, OLD])
    assert rotated.open(old_sealed, "k") == "v" and rotated.needs_resealing(old_sealed)
    new_sealed = rotated.seal("v", "k")
    assert not rotated.needs_resealing(new_sealed)
    assert Sealer([NEW]).open(new_sealed, "k") == "v"
    with pytest.raises(SealError, match="not configured"):
        Sealer([NEW]).open(old_sealed, "k")  # the old secret dropped: what it sealed is gone


def test_altered_or_forged_values_do_not_open() -> None:
    sealer = Sealer([NEW])
    header, key, iv, ciphertext, tag = sealer.seal({"sub": "alice"}, "k").split(".")
    flipped = ciphertext[:-1] + ("A" if ciphertext[-1] != "A" else "B")
    fields = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))
    # The place rewritten in the header to another record's: the header is authenticated too.
    moved = fields | {"ctx": hashlib.sha256(b"other").hexdigest()[:32]}
    other_place = base64.urlsafe_b64encode(json.dumps(moved).encode()).rstrip(b"=").decode()
    with pytest.raises(SealError, match="altered"):
        sealer.open(".".join((other_place, key, iv, ciphertext, tag)), "other")
    for forged in (".".join((header, key, iv, flipped, tag)), "not.a.sealed.value.at-all", ""):
        with pytest.raises(SealError):
            sealer.open(forged, "k")


@pytest.mark.parametrize("secrets", [[], "a-single-string-is-not-a-list-of-secrets", ["short"]])
def test_secrets_that_cannot_protect_are_refused(secrets: list[str]) -> None:
    with pytest.raises(ValueError, match="secret"):
        Sealer(secrets)
