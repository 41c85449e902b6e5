"""The broker's clients: redirect URIs matched as RFC 8252 §7.3 says, and a registration kept while
it is used, forgotten when it is not."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from authlib.oauth2.rfc6749.errors import InvalidClientError

from mcp_auth_middleware.broker import clients, storage
from mcp_auth_middleware.broker.clients import Clients, RegistrationPolicy, redirect_uri_matches
from mcp_auth_middleware.broker.storage import SQLiteRecords
from mcp_auth_middleware.server.client_metadata import ClientMetadataDocuments


@pytest.mark.parametrize(
    ("registered", "presented", "matches"),
    [
        ("http://127.0.0.1/cb", "http://127.0.0.1:49152/cb", True),
        ("http://[::1]:80/cb", "http://[::1]:3000/cb", True),
        ("http://localhost/cb", "http://localhost:8080/cb", True),
        ("http://127.0.0.1/cb", "http://127.0.0.1:49152/cb/", False),
        ("http://127.0.0.1/cb", "http://localhost:49152/cb", False),
        ("http://127.0.0.1/cb?a=1", "http://127.0.0.1:1/cb?a=2", False),
        ("https://app.example/cb", "https://app.example:444/cb", False),
        ("https://app.example/cb", "https://app.example/cb", True),
    ],
)
def test_redirect_uris_match_exactly_except_a_loopback_port(registered: str, presented: str, matches: bool) -> None:
    assert redirect_uri_matches(registered, presented) is matches


async def test_a_registration_in_use_is_kept_and_an_unused_one_forgotten(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [time.time()]
    clock = SimpleNamespace(time=lambda: now[0], monotonic=time.monotonic)
    monkeypatch.setattr(storage, "time", clock)
    monkeypatch.setattr(clients, "time", clock)
    records = SQLiteRecords(tmp_path / "broker.db")
    known = Clients(records, ClientMetadataDocuments(), policy=RegistrationPolicy(lifetime=100))
    info = await known.register({"redirect_uris": ["http://127.0.0.1/cb"], "token_endpoint_auth_method": "none"})
    now[0] += 80
    await known.keep(await known.find(info["client_id"]))  # a sign-in, or a token request
    now[0] += 80  # 160 s after registering, 80 after its last use
    assert (await known.find(info["client_id"])).redirect_uris == ("http://127.0.0.1/cb",)
    now[0] += 101
    with pytest.raises(InvalidClientError):
        await known.find(info["client_id"])
    await records.aclose()
