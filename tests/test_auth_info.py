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


def test_the_fast_init_builds_what_the_dataclass_would() -> None:
    """AuthInfo's __init__ fills the instance dict in one update instead of the generated
    frozen __init__'s setattr per field (a tenth of a new token's budget): the result must be
    the same value, equal, hashed and replaced like a plain frozen dataclass."""
    fields = {f.name for f in dataclasses.fields(AuthInfo)}
    assert set(vars(INFO)) == fields  # every field set, nothing else
    again = dataclasses.replace(INFO, token="t")
    assert again == INFO and again.token == "t" and again._derived == {}  # replace: a fresh value
    assert INFO.claims == {"iss": "https://as"} and AuthInfo(sub=None, client_id=None, scopes=frozenset()).claims == {}
    with pytest.raises(dataclasses.FrozenInstanceError):
        again.scopes = frozenset()  # type: ignore[misc]


def test_what_is_derived_from_a_caller_is_built_once() -> None:
    built: list[str | None] = []

    def name(info: AuthInfo) -> str:
        built.append(info.sub)
        return f"user {info.sub}"

    info = AuthInfo(sub="bob", client_id="app", scopes=frozenset())
    assert [info.derived(name) for _ in range(3)] == ["user bob"] * 3
    assert built == ["bob"]
