"""AuthInfo and get_auth."""

from __future__ import annotations

import dataclasses

import pytest

from mcp_auth_middleware import AuthInfo, get_auth

INFO = AuthInfo(sub="alice", client_id="app", scopes=frozenset({"a"}), claims={"iss": "https://as"})


def test_get_auth_from_a_scope_or_nothing() -> None:
    assert get_auth({"state": {"auth": INFO}}) is INFO
    assert get_auth({"state": {}}) is None
    assert get_auth() is None  # outside a request


def test_auth_info_is_hashable_and_frozen() -> None:
    assert hash(INFO) == hash(dataclasses.replace(INFO))
    with pytest.raises(dataclasses.FrozenInstanceError):
        INFO.sub = "mallory"  # type: ignore[misc]
